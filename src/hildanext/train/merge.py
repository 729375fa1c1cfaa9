# Top-k checkpoint merge (LLaDA2.0 section 4.3): the plain arithmetic mean of the k best checkpoints of the
# final WSD phase, ranked by their eval key (clean M2T loss at the inference block size); LoRA checkpoints are folded
# into the base first. Entry points: final_phase_candidates, average_state_dicts, merged_checkpoints, MergeError.
from pathlib import Path
from safetensors.torch import load_file
from hildanext.config import RuntimeParams
from hildanext.model import load_model
from hildanext.train.adapters import is_lora_checkpoint, merged_weights
from hildanext.train.checkpoints import Checkpoints
class MergeError(RuntimeError):
    pass

def final_phase_candidates(ckpts: Checkpoints, final_phase: str) -> list[Path]:
    states = {c: ckpts.state(c) for c in ckpts.all()}
    found = [c for c, s in states.items() if s.get("phase") == final_phase and ckpts.best_key in s.get("eval", {})]
    if not found:
        raise MergeError(f"{ckpts.folder}: no checkpoint of the final WSD phase {final_phase!r}; "
                         "run the wsd stage first")
    return sorted(found, key=lambda c: states[c]["eval"][ckpts.best_key])

def checkpoint_weights(path: Path, base_dir: Path | None = None) -> dict:
    return merged_weights(base_dir, path) if is_lora_checkpoint(path) else load_file(path / "model.safetensors")

def average_state_dicts(paths: list[Path], base_dir: Path | None = None) -> dict:
    total = None
    for path in paths:
        weights = checkpoint_weights(path, base_dir)
        total = {k: v.double() + (0 if total is None else total[k]) for k, v in weights.items()}
    return {k: (v / len(paths)).to(weights[k].dtype) for k, v in total.items()}

def merged_checkpoints(chosen: list[Path], base_dir: Path, runtime: RuntimeParams):
    """(model, tokenizer) holding the mean of the chosen checkpoints (base_dir: the base of LoRA checkpoints)."""
    model, tokenizer = load_model(base_dir if is_lora_checkpoint(chosen[0]) else chosen[0], runtime)
    missing, unexpected = model.load_state_dict(average_state_dicts(chosen, base_dir), strict=False)
    if unexpected or any(k != "lm_head.weight" for k in missing):
        raise MergeError(f"{chosen[0]}: checkpoint keys do not match the model "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    return model, tokenizer
