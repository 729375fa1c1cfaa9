# Reading params.yaml before validation and the notes on its values: ParamsError, read_yaml, apply_overrides
# (dotted key=value overrides), merge_dicts (overlays), and DEMO_VALUES / RECIPE_VALUES (why params.yaml differs
# from config.py's recipe defaults). config.py re-exports all of them; the dataclasses live there.
from pathlib import Path
import yaml
class ParamsError(ValueError):
    pass

def read_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ParamsError(f"{path}: cannot read params ({e.__class__.__name__}: {e})") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections")
    return raw

def apply_overrides(raw: dict, overrides, source: str = "--set") -> dict:
    out = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParamsError(f"{source}: {item!r} is not key=value")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamsError(f"{source}: {key}: {part} is not a section")
        node[leaf] = yaml.safe_load(value) if value else ""
    return out

def merge_dicts(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge_dicts(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out

DEMO_VALUES = {
    "wsd.warmup_blocks": "the demo converts better without the warmup/stable phases on its 360-step budget "
                         "(docs/RESULTS.md, abl-shift-no-warmup); the recipe keeps LLaDA2.0's 1 -> 4 -> 32 -> 64",
    "wsd.stable_steps": "no MDLM stable phase on the demo (same ablation); the recipe's overlay sets its own",
    "wsd.decay_blocks": "the demo trains BDLM at its decay block size 32 only (same ablation)",
    "wsd.decay_steps": "all 360 demo steps at block 32, the budget the WSD schedule had (same ablation)",
    "wsd.lr": "the demo's tiny model converts best at 2e-3 (sweep in docs/RESULTS.md); the recipe default 1e-4 is the "
              "safe rate for Qwen3-0.6B",
    "wsd.lr_warmup_steps": "the demo's WSD run is a few hundred steps, so it warms up over 20; the recipe uses 100",
    "sft.lr": "the demo's tiny model fine-tunes at 5e-4; the recipe default 1e-4 is the safe rate for Qwen3-0.6B",
    "sft.lr_warmup_steps": "the demo's SFT run is 120 steps, so it warms up over 20; the recipe uses 100",
    "distill.lr": "as sft.lr: the demo's tiny model distils at 5e-4; the recipe default 1e-4 is Qwen3-0.6B's safe rate",
    "distill.lr_warmup_steps": "as sft.lr_warmup_steps: the demo's 120 distillation steps warm up over 20",
    "distill_data.continuations": "3,000 continuations (about 190k teacher tokens, about a minute on 2 CPU cores) fit "
                                  "the demo's make-run budget; the recipe asks Qwen3-0.6B for 20,000",
    "distill_data.answers": "the demo base is a story model that never saw a chat; the recipe's Qwen3-0.6B answers "
                            "5,000 SFT prompts",
    "distill_data.opening_tokens": "demo stories are about 100-200 tokens, so openings stop at 48; the recipe cuts "
                                   "up to 256",
    "distill_data.new_tokens": "64 teacher tokens per demo opening (the bench asks for 64); the recipe writes 256",
    "distill_data.batch_size": "the demo base is tiny, so 64 prompts per generate batch; the recipe's 32 fits 8 GB",
}
RECIPE_VALUES = {
    "objective.shift": "token shift won the demo ablation (docs/RESULTS.md); ObjectiveParams keeps LLaDA2.x's "
                       "same-position default, so params.yaml and the gtx1080 overlay turn it on",
}
