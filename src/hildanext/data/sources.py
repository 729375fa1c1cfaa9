# Raw corpus readers behind one interface: iter_source(spec, params, skips) yields Doc(id, text, source) from
# the demo generator, Dolma gzipped JSON Lines, TinyStories .txt (<|endoftext|> separator lines) or parquet,
# and generic .jsonl/.jsonl.gz/.jsonl.zst/.txt/.parquet by path or glob. Bad records are skipped and counted
# by reason in `skips` (a Counter); a file that cannot be opened at all raises DataError naming it.
import glob, gzip, io, itertools, json, zlib
from collections import Counter
from pathlib import Path
from typing import Iterator, NamedTuple
import pyarrow.parquet as pq
import zstandard
from hildanext.config import DataParams, SourceParams
from hildanext.data.demo_corpus import iter_demo_stories
SEPARATOR = "<|endoftext|>"
class Doc(NamedTuple):
    id: str
    text: str
    source: str

class DataError(RuntimeError):
    pass

def resolve_paths(spec: SourceParams, index: int) -> list[Path]:
    found = []
    for pattern in spec.paths:
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches:
            raise DataError(f"prepare.sources[{index}].paths: {pattern!r} matches no file")
        found += [Path(m) for m in matches]
    return found

def file_kind(path: Path, kind: str) -> str:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".txt"):
        return "txt"
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst", ".json")):
        return "dolma" if kind == "dolma" else "jsonl"
    raise DataError(f"{path}: unknown file type (want .jsonl[.gz|.zst], .json.gz, .txt or .parquet)")

def open_binary(path: Path):
    name = path.name.lower()
    try:
        if name.endswith(".gz"):
            return gzip.open(path, "rb")
        if name.endswith(".zst"):
            return io.BufferedReader(zstandard.open(path, "rb"), 1 << 16)
        return open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror or e})") from None

def raw_lines(path: Path, max_line_bytes: int, skips: Counter) -> Iterator[bytes | None]:
    """Complete lines as bytes; None for an oversized line (counted); stops at a truncated stream (counted)."""
    seen = 0
    with open_binary(path) as stream:
        try:
            while line := stream.readline(max_line_bytes + 1):
                seen += 1
                if len(line) > max_line_bytes:
                    skips["oversized_line"] += 1
                    while not line.endswith(b"\n") and (line := stream.readline(1 << 20)):
                        pass
                    line = None
                yield line
        except (EOFError, OSError, zlib.error, zstandard.ZstdError) as e:
            if not seen:
                raise DataError(f"{path}: cannot read ({e})") from None
            skips["truncated_stream"] += 1

def decode(line: bytes) -> str | None:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None

def parse_record(line: bytes, required: tuple[str, ...], skips: Counter) -> dict | None:
    if (text := decode(line)) is None:
        skips["non_utf8"] += 1
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        skips["invalid_json"] += 1
        return None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        skips["missing_text"] += 1
        return None
    if any(not record.get(key) for key in required):
        skips["missing_field"] += 1
        return None
    return record

def read_jsonl(path: Path, kind: str, name: str, p: DataParams, skips: Counter) -> Iterator[Doc]:
    required = ("id", "source") if kind == "dolma" else ()
    for n, line in enumerate(raw_lines(path, p.max_line_bytes, skips)):
        if line is not None and line.strip() and (record := parse_record(line, required, skips)) is not None:
            yield Doc(str(record.get("id") or f"{path.name}#{n}"), record["text"], name)

def read_txt(path: Path, name: str, p: DataParams, skips: Counter) -> Iterator[Doc]:
    story, bad, count = [], None, 0
    for line in itertools.chain(raw_lines(path, p.max_line_bytes, skips), [SEPARATOR.encode()]):
        text = decode(line) if line is not None else None
        if text is not None and text.strip() == SEPARATOR:
            if bad == "non_utf8":
                skips[bad] += 1
            if story and not bad:
                yield Doc(f"{path.name}#{count}", "".join(story), name)
            story, bad, count = [], None, count + 1
            continue
        bad = bad or ("oversized_line" if line is None else "non_utf8" if text is None else None)
        story.append(text or "")

def read_parquet(path: Path, name: str, skips: Counter) -> Iterator[Doc]:
    try:
        table = pq.ParquetFile(path)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot open as parquet ({e})") from None
    if "text" not in table.schema_arrow.names:
        raise DataError(f"{path}: parquet file has no 'text' column")
    columns = ["text"] + (["id"] if "id" in table.schema_arrow.names else [])
    count = 0
    for batch in table.iter_batches(batch_size=4096, columns=columns):
        rows = batch.to_pydict()
        for i, text in enumerate(rows["text"]):
            doc_id = rows["id"][i] if "id" in rows else None
            count += 1
            if not isinstance(text, str):
                skips["missing_text"] += 1
                continue
            yield Doc(str(doc_id or f"{path.name}#{count - 1}"), text, name)

def iter_source(spec: SourceParams, index: int, p: DataParams, skips: Counter) -> Iterator[Doc]:
    name = spec.name or spec.kind
    if spec.kind == "demo":
        yield from (Doc(f"demo-{i}", s, name) for i, s in enumerate(iter_demo_stories(p.demo_stories, p.demo_seed)))
        return
    for path in resolve_paths(spec, index):
        kind = file_kind(path, spec.kind)
        if kind == "parquet":
            yield from read_parquet(path, name, skips)
        elif kind == "txt":
            yield from read_txt(path, name, p, skips)
        else:
            yield from read_jsonl(path, kind, name, p, skips)
