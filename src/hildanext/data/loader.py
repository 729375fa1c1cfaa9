# Random access and training batches over packed shards (data/tokenized, data/sft) in constant memory
# (np.memmap). Entry points: PackedShards(folder, split, tokenizer_dir) (refuses shards made with another
# tokenizer, one line; subclasses add arrays via `arrays`), check_tokenizer, ShardLoader(shards, batch_size,
# seed): next_batch, next_step (a rank's share of a global step), state()/load_state() for exact resume;
# batches map array names to tensors.
import json
from pathlib import Path
import numpy as np
import torch
from hildanext.data.sources import DataError
from hildanext.files import sha256_file
def check_tokenizer(manifest: dict, tokenizer_dir: Path, where: Path, stage: str = "tokenize") -> None:
    sha = sha256_file(Path(tokenizer_dir) / "tokenizer.json")
    if sha != manifest["tokenizer_sha256"]:
        raise DataError(f"{where}: shards were tokenized with tokenizer {manifest['tokenizer_sha256'][:12]} (vocab "
                        f"{manifest['vocab_size']}), not {tokenizer_dir} ({sha[:12]}); re-run the {stage} stage")

class PackedShards:
    """Rows of one split: array name -> (dtype on disk in <split>.<name>.bin, numpy dtype of the tensor)."""
    arrays = {"input_ids": (np.uint32, np.int64), "doc_ids": (np.int32, np.int64)}
    stage = "tokenize"
    def __init__(self, folder: Path, split: str, tokenizer_dir: Path | None = None):
        self.folder = Path(folder)
        if not (self.folder / "manifest.json").exists():
            raise DataError(f"{self.folder}: no manifest.json; run the {self.stage} stage first")
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        if tokenizer_dir is not None:
            check_tokenizer(self.manifest, tokenizer_dir, self.folder, self.stage)
        self.seq_len, rows = self.manifest["seq_len"], self.manifest["splits"][split]["rows"]
        self.columns = {name: self.open_array(split, name, disk, rows) for name, (disk, _) in self.arrays.items()}
        self.ids, self.doc_ids = self.columns["input_ids"], self.columns["doc_ids"]
    def open_array(self, split: str, name: str, dtype, rows: int) -> np.ndarray:
        if not rows:
            return np.zeros((0, self.seq_len), dtype)
        return np.memmap(self.folder / f"{split}.{name}.bin", dtype, "r", shape=(rows, self.seq_len))
    def __len__(self) -> int:
        return len(self.ids)
    def __getitem__(self, index) -> tuple[torch.Tensor, ...]:
        dtypes = {name: dtype for name, (_, dtype) in self.arrays.items()}
        return tuple(torch.from_numpy(self.columns[name][index].astype(dtype)) for name, dtype in dtypes.items())

class ShardLoader:
    def __init__(self, shards: PackedShards, batch_size: int, seed: int):
        if len(shards) < batch_size:
            raise DataError(f"{shards.folder}: {len(shards)} rows, fewer than one batch of {batch_size}")
        self.shards, self.batch_size, self.seed, self.epoch, self.position = shards, batch_size, seed, 0, 0
    def order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))
    def state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}
    def load_state(self, state: dict) -> None:
        self.epoch, self.position, self.seed = state["epoch"], state["position"], state["seed"]
    def batch(self, rows: np.ndarray) -> dict:
        return dict(zip(self.shards.arrays, self.shards[rows], strict=True))
    def next_batch(self) -> dict:
        if self.position + self.batch_size > len(self.shards):
            self.epoch, self.position = self.epoch + 1, 0
        rows = np.sort(self.order()[self.position : self.position + self.batch_size])
        self.position += self.batch_size
        return self.batch(rows)
    def next_step(self, n_micro: int, rank: int = 0, world: int = 1) -> list[dict]:
        """This rank's n_micro micro-batches of one global step of n_micro * world micro-batches."""
        span = n_micro * world * self.batch_size
        if self.position + span > len(self.shards):
            self.epoch, self.position = self.epoch + 1, 0
        order, start = self.order(), self.position + rank * n_micro * self.batch_size
        self.position += span
        size = self.batch_size
        return [self.batch(np.sort(order[start + m * size : start + (m + 1) * size])) for m in range(n_micro)]
    def __iter__(self):
        while True:
            yield self.next_batch()
