# Top-k checkpoint merge (LLaDA2.0 section 4.3): the plain arithmetic mean of the k best checkpoints of the
# final WSD phase, ranked by eval M2T loss at the inference block size; the merged model is evaluated the
# same way and reported beside the best single checkpoint; LoRA checkpoints are folded into the base first.
# Entry points: final_phase_candidates, average_state_dicts, merge_stage (`hildanext merge`: models/wsd -> models/merged, metrics/merge.json).
from pathlib import Path
from safetensors.torch import load_file
from hildanext.train.adapters import is_lora_checkpoint, merged_weights
from hildanext.config import Params
from hildanext.data.loader import PackedShards
from hildanext.files import write_json_atomic
from hildanext.model import load_model, model_meta, save_model
from hildanext.train.objective import regular_token_ids
from hildanext.train.loop import Checkpoints
from hildanext.train.wsd import evaluate, wsd_phases
class MergeError(RuntimeError):
    pass

def final_phase_candidates(ckpts: Checkpoints, final_phase: str) -> list[Path]:
    found = [c for c in ckpts.all() if ckpts.state(c).get("phase") == final_phase and ckpts.best_key in ckpts.state(c).get("eval", {})]
    if not found:
        raise MergeError(f"{ckpts.root}: no checkpoint of the final WSD phase {final_phase!r}; run the wsd stage first")
    return sorted(found, key=lambda c: ckpts.state(c)["eval"][ckpts.best_key])

def checkpoint_weights(path: Path, base_dir: Path | None = None) -> dict:
    return merged_weights(base_dir, path) if is_lora_checkpoint(path) else load_file(path / "model.safetensors")

def average_state_dicts(paths: list[Path], base_dir: Path | None = None) -> dict:
    total = None
    for path in paths:
        weights = checkpoint_weights(path, base_dir)
        total = {k: v.double() for k, v in weights.items()} if total is None else {k: total[k] + weights[k].double() for k in total}
    return {k: (v / len(paths)).to(weights[k].dtype) for k, v in total.items()}

def merge_stage(params: Params, root: Path, tracker) -> dict:
    wsd_dir, eval_shards = root / "models/wsd", PackedShards(root / "data/tokenized", "eval", root / "models/init")
    ckpts = Checkpoints(wsd_dir, 1, 0, f"eval/b{params.wsd.decay_to}/loss_m2t")
    chosen = final_phase_candidates(ckpts, wsd_phases(params.wsd, eval_shards.seq_len)[-1].name)[: params.merge.top_k]
    model, tokenizer = load_model(root / "models/init" if is_lora_checkpoint(chosen[0]) else chosen[0], params.runtime)
    missing, unexpected = model.load_state_dict(average_state_dicts(chosen, root / "models/init"), strict=False)
    if unexpected or any(k != "lm_head.weight" for k in missing):
        raise MergeError(f"{chosen[0]}: checkpoint keys do not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    merged = evaluate(model, eval_shards, params.wsd.decay_to, params, tokenizer.mask_token_id, regular_token_ids(tokenizer))
    best = ckpts.state(chosen[0])["eval"][ckpts.best_key]
    report = {"chosen": [c.name for c in chosen], "merged_loss_m2t": merged["loss_m2t"], "merged_acc_m2t": merged["acc_m2t"], "best_single_loss_m2t": best}
    save_model(model, tokenizer, root / "models/merged", model_meta(tokenizer, "merge", params, params.wsd.decay_to, ",".join(report["chosen"]), root) | {"merge": report})
    write_json_atomic(root / "metrics/merge.json", report)
    return {k: v for k, v in report.items() if k != "chosen"} | {"k": len(chosen)}
