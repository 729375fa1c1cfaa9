# The distill_data stage (`hildanext distill-data`): the AR base (models/demo-base or model.base) writes
# continuations of openings from data/processed's train split (never the eval split the bench draws from) and
# answers to train-split SFT prompts -> data/distill (shards/<fingerprint>/ resumable, rows/ packed as SFT rows
# at sft_data.seq_len, block wsd.decay_to); counts and the teacher's tokens/s in metrics/distill_data.json and
# MLflow. Entry points: all_prompts(params, tokenizer), stage_fingerprint(params, teacher_dir), run(params, tracker).
import hashlib, json, shutil
from collections import Counter
from pathlib import Path
import pyarrow.parquet as pq
from hildanext.config import Params, as_dict
from hildanext.data.chat import iter_chats
from hildanext.data.distill_data import answer_prompts, generate_shard, openings, pack_examples, split_of
from hildanext.data.sft_data import PAD, load_chat_tokenizer, sft_manifest
from hildanext.data.sft_data import split_of as chat_split
from hildanext.files import atomic_dir, hash_tree, sha256_file, write_json_atomic
from hildanext.model import load_model
from hildanext.pipeline import paths
def all_prompts(params: Params, tokenizer) -> list[dict]:
    """Continuations of train-split openings, then answers to train-split SFT chats (none asked: none read)."""
    texts = pq.read_table(paths.PROCESSED / "train.parquet", columns=["text"]).column("text").to_pylist()
    prompts = openings(texts, tokenizer, params.distill_data)
    if params.distill_data.answers:
        chats = iter_chats(params.sft_data, Counter(), frozenset(tokenizer.get_added_vocab()))
        chats = [c for c in chats if chat_split(c, params.sft_data) == "train"]
        prompts += answer_prompts(chats, tokenizer, params.distill_data.answers)
    return prompts

def stage_fingerprint(params: Params, teacher_dir: Path) -> str:
    """What the shards depend on: the params, the teacher's files, the train split and the tokenizer."""
    parts = [as_dict(params.distill_data), as_dict(params.sft_data) if params.distill_data.answers else None,
             hash_tree(teacher_dir), sha256_file(paths.PROCESSED / "train.parquet"),
             sha256_file(Path(params.sft_data.tokenizer) / "tokenizer.json"), params.runtime.dtype]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

def clear_stale(root: Path, keep: str) -> None:
    """Remove the shard folders of other fingerprints (changed params, teacher or data)."""
    for old in root.iterdir() if root.exists() else []:
        if old.name != keep:
            shutil.rmtree(old)

def teacher_shards(params: Params, tokenizer, prompts: list[dict], folder: Path, teacher_dir: Path) -> tuple:
    """Every shard's JSON (loaded from folder or generated now); the number generated now."""
    p, teacher, shards, made = params.distill_data, None, [], 0
    for index, start in enumerate(range(0, len(prompts), p.shard_prompts)):
        path = folder / f"shard-{index:05d}.json"
        if not path.exists():
            teacher = teacher or load_model(teacher_dir, params.runtime)[0]
            part = prompts[start : start + p.shard_prompts]
            write_json_atomic(path, generate_shard(teacher, tokenizer, part, p, p.seed * 1_000_003 + index))
            made += 1
        shards.append(json.loads(path.read_text()))
    return shards, made

def run(params: Params, tracker) -> dict:
    p, tokenizer_dir, block = params.distill_data, Path(params.sft_data.tokenizer), params.wsd.decay_to
    tokenizer, teacher_dir = load_chat_tokenizer(tokenizer_dir), paths.base_folder(params)
    prompts, fp = all_prompts(params, tokenizer), stage_fingerprint(params, teacher_dir)
    root = paths.DISTILL_DATA / "shards"
    clear_stale(root, fp[:16])
    shards, made = teacher_shards(params, tokenizer, prompts, root / fp[:16], teacher_dir)
    records = [r | {"split": split_of(i, p)} for i, r in enumerate(x for s in shards for x in s["records"])]
    with atomic_dir(paths.DISTILL_DATA / "rows") as tmp:
        packed = pack_examples(records, params.sft_data.seq_len, block, tokenizer.convert_tokens_to_ids(PAD), tmp)
        splits = {s: packed[s] for s in ("train", "eval")}
        skips = Counter(too_long_or_empty=packed["skipped"])
        manifest = sft_manifest(tokenizer, sha256_file(tokenizer_dir / "tokenizer.json"), params.sft_data.seq_len,
                                block, splits, skips)
        write_json_atomic(tmp / "manifest.json", manifest | {"format": "hildanext-distill/1", "fingerprint": fp})
    tokens, seconds = sum(s["tokens"] for s in shards), sum(s["seconds"] for s in shards)
    kinds = Counter(f"{r['kind']}/{r['cut']}" for r in records)
    metrics = {"prompts": len(records), "teacher_tokens": tokens, "teacher_seconds": seconds,
               "teacher_tokens_per_s": tokens / max(seconds, 1e-9), "shards": len(shards), "shards_generated": made,
               "skipped": packed["skipped"]} | {f"prompts/{k}": v for k, v in sorted(kinds.items())}
    metrics |= {f"{s}/{k}": v for s in splits for k, v in splits[s].items()}
    write_json_atomic(paths.metrics("distill_data"), metrics)
    return metrics
