# The tokenize stage (`hildanext tokenize`): data/processed -> data/tokenized packed rows with document ids,
# encoded by tokenize.tokenizer (models/init), and metrics/data.json (per-split counts beside the prepare
# manifest's). Entry point: run(params, tracker).
import json
from pathlib import Path
from transformers import AutoTokenizer
from hildanext.config import Params
from hildanext.data.packing import SPLITS, pack_split, shard_manifest
from hildanext.files import atomic_dir, sha256_file, write_json_atomic
from hildanext.pipeline import paths
def run(params: Params, tracker) -> dict:
    p, processed, tokenizer_dir = params.tokenize, paths.PROCESSED, Path(params.tokenize.tokenizer)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    with atomic_dir(paths.TOKENIZED) as tmp:
        splits = {s: pack_split(processed / f"{s}.parquet", tokenizer, tmp, s, p.seq_len, p.batch_docs) for s in SPLITS}
        manifest = shard_manifest(tokenizer, sha256_file(tokenizer_dir / "tokenizer.json"), p.seq_len, splits)
        write_json_atomic(tmp / "manifest.json", manifest)
    prepared = json.loads((processed / "manifest.json").read_text())
    per_split = {s: splits[s] | prepared["splits"].get(s, {}) for s in SPLITS}
    metrics = {"splits": per_split, "skipped": prepared["skipped"], "seq_len": p.seq_len}
    write_json_atomic(paths.metrics("data"), metrics)
    flat = {f"{s}/{k}": v for s in SPLITS for k, v in per_split[s].items()}
    return flat | {f"skipped/{k}": v for k, v in metrics["skipped"].items()}
