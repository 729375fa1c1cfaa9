# Random access and training batches over packed shards (data/tokenized) in constant memory (np.memmap).
# Entry points: PackedShards(root, split, tokenizer_dir) (refuses shards made with another tokenizer, one
# line), check_tokenizer, ShardLoader(shards, batch_size, seed): next_batch, next_step (a rank's share of a global
# step), state()/load_state() for exact resume.
import json
from pathlib import Path
import numpy as np
import torch
from hildanext.data.sources import DataError
from hildanext.files import sha256_file
def check_tokenizer(manifest: dict, tokenizer_dir: Path, where: Path) -> None:
    sha = sha256_file(Path(tokenizer_dir) / "tokenizer.json")
    if sha != manifest["tokenizer_sha256"]:
        raise DataError(f"{where}: shards were tokenized with tokenizer {manifest['tokenizer_sha256'][:12]} (vocab {manifest['vocab_size']}), not {tokenizer_dir} ({sha[:12]}); re-run the tokenize stage")

class PackedShards:
    def __init__(self, root: Path, split: str, tokenizer_dir: Path | None = None):
        self.root = Path(root)
        if not (self.root / "manifest.json").exists():
            raise DataError(f"{self.root}: no manifest.json; run the tokenize stage first")
        self.manifest = json.loads((self.root / "manifest.json").read_text())
        if tokenizer_dir is not None:
            check_tokenizer(self.manifest, tokenizer_dir, self.root)
        self.seq_len, rows = self.manifest["seq_len"], self.manifest["splits"][split]["rows"]
        self.ids = np.memmap(self.root / f"{split}.input_ids.bin", np.uint32, "r", shape=(rows, self.seq_len)) if rows else np.zeros((0, self.seq_len), np.uint32)
        self.doc_ids = np.memmap(self.root / f"{split}.doc_ids.bin", np.int32, "r", shape=(rows, self.seq_len)) if rows else np.zeros((0, self.seq_len), np.int32)
    def __len__(self) -> int:
        return len(self.ids)
    def __getitem__(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.ids[index].astype(np.int64)), torch.from_numpy(self.doc_ids[index].astype(np.int64))

class ShardLoader:
    def __init__(self, shards: PackedShards, batch_size: int, seed: int):
        if len(shards) < batch_size:
            raise DataError(f"{shards.root}: {len(shards)} rows, fewer than one batch of {batch_size}")
        self.shards, self.batch_size, self.seed, self.epoch, self.position = shards, batch_size, seed, 0, 0
    def order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))
    def state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}
    def load_state(self, state: dict) -> None:
        self.epoch, self.position, self.seed = state["epoch"], state["position"], state["seed"]
    def next_batch(self) -> dict:
        if self.position + self.batch_size > len(self.shards):
            self.epoch, self.position = self.epoch + 1, 0
        rows = np.sort(self.order()[self.position : self.position + self.batch_size])
        self.position += self.batch_size
        input_ids, doc_ids = self.shards[rows]
        return {"input_ids": input_ids, "doc_ids": doc_ids}
    def next_step(self, n_micro: int, rank: int = 0, world: int = 1) -> list[dict]:
        """This rank's n_micro micro-batches of one global step of n_micro * world micro-batches."""
        span = n_micro * world * self.batch_size
        if self.position + span > len(self.shards):
            self.epoch, self.position = self.epoch + 1, 0
        order, start = self.order(), self.position + rank * n_micro * self.batch_size
        self.position += span
        rows = [np.sort(order[start + m * self.batch_size : start + (m + 1) * self.batch_size]) for m in range(n_micro)]
        return [dict(zip(("input_ids", "doc_ids"), self.shards[r], strict=True)) for r in rows]
    def __iter__(self):
        while True:
            yield self.next_batch()
