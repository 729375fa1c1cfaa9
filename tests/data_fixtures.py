# Writers of raw-corpus fixtures in the exact real formats (Dolma gzipped JSON Lines, TinyStories .txt with
# <|endoftext|> separator lines, parquet with a `text` column, .jsonl.zst), each with the bad records real
# corpora contain. Each writer returns the texts that must survive and the skip counts expected by reason.
import gzip, json, zlib
from pathlib import Path
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
def story(i: int) -> str:
    return f"Story {i}: once upon a time a small cat named Tom{i} found a red ball in the garden and was happy."

def dolma_line(i: int, **extra) -> bytes:
    record = {"id": f"doc-{i}", "text": story(i), "source": "common-crawl", "added": "2023-01-01",
              "created": "2022-01-01", "metadata": {}}
    return (json.dumps(record | extra) + "\n").encode()

def write_dolma(path: Path, max_line_bytes: int) -> tuple[list[str], dict]:
    lines = [dolma_line(0), b"{not json\n", dolma_line(1), json.dumps({"id": "x", "source": "s"}).encode() + b"\n"]
    lines += [b'{"id": "b", "source": "s", "text": "caf\xe9 \xff"}\n', dolma_line(2, text=""),
              dolma_line(3, text="   \n\t ")]
    lines += [dolma_line(4, text="x" * max_line_bytes), dolma_line(5, id=""), b"\n", dolma_line(6),
              dolma_line(0, id="dup")]
    path.write_bytes(gzip.compress(b"".join(lines)))
    skips = {"invalid_json": 1, "missing_text": 1, "non_utf8": 1, "empty_text": 2, "oversized_line": 1,
             "missing_field": 1, "duplicate": 1}
    return [story(0), story(1), story(6)], skips

def write_truncated_dolma(path: Path, n: int = 400, keep: float = 0.5) -> list[str]:
    data = gzip.compress(b"".join(dolma_line(100 + i) for i in range(n)))
    cut = data[: int(len(data) * keep)]
    path.write_bytes(cut)
    prefix = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut)
    complete = prefix[: prefix.rfind(b"\n") + 1].decode().splitlines()
    return [json.loads(line)["text"] for line in complete]

def write_tinystories_txt(path: Path) -> tuple[list[str], dict]:
    good = [f"{story(10 + i)}\nThe end of story {i}." for i in range(3)]
    body = f"{good[0]}\n<|endoftext|>\n{good[1]}\n<|endoftext|>\n".encode()
    body += b"Bad \xc3\x28 bytes here.\n<|endoftext|>\n"
    body += b"\n<|endoftext|>\n" + f"{good[2]}\n".encode()
    path.write_bytes(body)
    return good, {"non_utf8": 1, "empty_text": 1}

def write_parquet(path: Path) -> tuple[list[str], dict]:
    texts = [story(20), None, "", story(21), "tiny"]
    pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), path)
    return [story(20), story(21)], {"missing_text": 1, "empty_text": 1, "too_short": 1}

def write_jsonl_zst(path: Path) -> tuple[list[str], dict]:
    lines = [json.dumps({"text": story(30 + i)}) for i in range(3)] + ["[1, 2]"]
    path.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    return [story(30 + i) for i in range(3)], {"missing_text": 1}
