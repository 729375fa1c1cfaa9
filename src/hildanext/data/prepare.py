# The prepare stage: streams every configured source into normalised documents (id, text, source), filters
# by length, drops exact duplicates, mixes sources by weight and token budget, and splits train/eval by a
# hash of the document id into <split>.parquet files (the prepare stage writes them to data/processed).
# Entry points: normalise, mix_sources, split_of, prepared_docs, write_splits(p, out) -> manifest.
import hashlib, unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterator
import pyarrow as pa
import pyarrow.parquet as pq
from hildanext.config import DataParams
from hildanext.data.sources import Doc, iter_source
SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string())])
SPLITS = ("train", "eval")
def normalise(text: str) -> str:
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()

def filtered(docs: Iterator[Doc], p: DataParams, seen: set, skips: Counter) -> Iterator[Doc]:
    for doc in docs:
        text = normalise(doc.text)
        reason = ("empty_text" if not text else "too_short" if len(text) < p.min_chars
                  else "too_long" if len(text) > p.max_chars else None)
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest() if p.dedup and not reason else None
        if digest is not None and digest in seen:
            reason = "duplicate"
        if reason:
            skips[reason] += 1
            continue
        if digest is not None:
            seen.add(digest)
        yield doc._replace(text=text)

def mix_sources(streams: list[Iterator[Doc]], weights, budgets, p: DataParams) -> Iterator[Doc]:
    used, active = [0.0] * len(streams), set(range(len(streams)))
    while active:
        i = min(active, key=lambda k: (used[k] / weights[k], k))
        doc = next(streams[i], None)
        tokens = len(doc.text.encode()) / p.bytes_per_token if doc else 0.0
        if doc is None or (budgets[i] and used[i] + tokens > budgets[i]):
            if p.mix_stop == "first":
                return
            active.discard(i)
            continue
        used[i] += tokens
        yield doc

def split_of(doc: Doc, p: DataParams) -> str:
    digest = hashlib.blake2b(f"{p.split_seed}:{doc.source}:{doc.id}".encode(), digest_size=8).digest()
    return "eval" if int.from_bytes(digest, "big") / 2**64 < p.eval_fraction else "train"

def prepared_docs(p: DataParams, skips: Counter) -> Iterator[tuple[str, Doc]]:
    seen: set = set()
    streams = [filtered(iter_source(s, i, p, skips), p, seen, skips) for i, s in enumerate(p.sources)]
    for doc in mix_sources(streams, [s.weight for s in p.sources], [s.max_tokens for s in p.sources], p):
        yield split_of(doc, p), doc

class SplitWriter:
    def __init__(self, path: Path, flush_docs: int = 4096):
        self.writer, self.rows, self.flush_docs = pq.ParquetWriter(path, SCHEMA), [], flush_docs
    def add(self, doc: Doc) -> None:
        self.rows.append(doc)
        if len(self.rows) >= self.flush_docs:
            self.flush()
    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist([d._asdict() for d in self.rows], schema=SCHEMA))
            self.rows = []
    def close(self) -> None:
        self.flush()
        self.writer.close()

def write_splits(p: DataParams, out: Path) -> dict:
    skips, stats = Counter(), {s: Counter() for s in SPLITS}
    writers = {s: SplitWriter(out / f"{s}.parquet") for s in SPLITS}
    try:
        for split, doc in prepared_docs(p, skips):
            writers[split].add(doc)
            stats[split]["docs"] += 1
            stats[split]["chars"] += len(doc.text)
            stats[split][f"docs/{doc.source}"] += 1
    finally:
        for writer in writers.values():
            writer.close()
    return {"splits": {s: dict(c) for s, c in stats.items()}, "skipped": dict(skips)}
