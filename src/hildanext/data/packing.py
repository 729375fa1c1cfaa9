# Tokenize and pack: encodes prepared documents with the model's own tokenizer, appends <|endoftext|> after
# every document and packs fixed seq_len rows, keeping each token's document index (long documents continue
# into the next row). Shards: <split>.input_ids.bin (uint32) + <split>.doc_ids.bin (int32; -1 = final pad)
# and a manifest (tokenizer sha256, vocab size, rows). Entry points: RowPacker, pack_split, shard_manifest.
import itertools
from collections import Counter
from pathlib import Path
import numpy as np
import pyarrow.parquet as pq
SPLITS, SEPARATOR = ("train", "eval"), "<|endoftext|>"
class RowPacker:
    def __init__(self, out: Path, split: str, seq_len: int):
        self.ids_file, self.docs_file = (open(out / f"{split}.{name}.bin", "wb") for name in ("input_ids", "doc_ids"))
        self.seq_len, self.rows, self.carry = seq_len, 0, (np.zeros(0, np.uint32), np.zeros(0, np.int32))
    def add(self, ids: np.ndarray, doc_ids: np.ndarray) -> None:
        ids, doc_ids = np.concatenate([self.carry[0], ids]), np.concatenate([self.carry[1], doc_ids])
        full = len(ids) // self.seq_len * self.seq_len
        self.ids_file.write(ids[:full].tobytes())
        self.docs_file.write(doc_ids[:full].tobytes())
        self.rows += full // self.seq_len
        self.carry = ids[full:], doc_ids[full:]
    def close(self, pad_id: int) -> int:
        pad = (-len(self.carry[0])) % self.seq_len
        if len(self.carry[0]):
            self.add(np.full(pad, pad_id, np.uint32), np.full(pad, -1, np.int32))
        self.ids_file.close()
        self.docs_file.close()
        return pad

def encode_batch(tokenizer, texts: list[str], sep_id: int, first_doc: int) -> tuple[np.ndarray, np.ndarray]:
    encoded = [e.ids for e in tokenizer.backend_tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
    lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    ids = np.fromiter(itertools.chain.from_iterable(encoded), np.uint32, int(lengths.sum()))
    ids = np.insert(ids, np.cumsum(lengths), np.uint32(sep_id))
    return ids, np.repeat(np.arange(first_doc, first_doc + len(texts), dtype=np.int32), lengths + 1)

def pack_split(source: Path, tokenizer, out: Path, split: str, seq_len: int, batch_docs: int) -> dict:
    sep_id, packer = tokenizer.convert_tokens_to_ids(SEPARATOR), RowPacker(out, split, seq_len)
    docs, tokens, by_source = 0, 0, Counter()
    for batch in pq.ParquetFile(source).iter_batches(batch_size=batch_docs, columns=["text", "source"]):
        ids, doc_ids = encode_batch(tokenizer, batch.column(0).to_pylist(), sep_id, docs)
        for name, count in zip(batch.column(1).to_pylist(),
                               np.bincount(doc_ids - docs, minlength=batch.num_rows).tolist(), strict=True):
            by_source[f"tokens/{name}"] += count
        packer.add(ids, doc_ids)
        docs, tokens = docs + batch.num_rows, tokens + len(ids)
    pad = packer.close(tokenizer.pad_token_id)
    return {"docs": docs, "tokens": tokens, "rows": packer.rows, "pad_tokens": pad,
            "padding_share": pad / max(1, packer.rows * seq_len)} | dict(by_source)

def shard_manifest(tokenizer, tokenizer_sha256: str, seq_len: int, splits: dict) -> dict:
    ids = {"sep_id": tokenizer.convert_tokens_to_ids(SEPARATOR), "pad_id": tokenizer.pad_token_id,
           "mask_id": tokenizer.mask_token_id}
    head = {"format": "hildanext-shards/1", "seq_len": seq_len, "tokenizer_sha256": tokenizer_sha256}
    return head | {"vocab_size": len(tokenizer), **ids, "splits": splits}
