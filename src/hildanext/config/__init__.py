# Typed, frozen params for every pipeline section, loaded from params.yaml with dotted overrides.
# Entry points: load_params(path, overrides) -> Params; apply_overrides(raw, overrides); flatten(params);
# merge_overlay(params_path, overlay_path) writes params.yaml with an overlay (e.g. overlays/ci.yaml) merged in.
# Any unknown key, wrong type or out-of-range value raises ParamsError naming the key and the file.
import dataclasses
from pathlib import Path
from typing import Annotated, Literal
import yaml
from pydantic import Field, TypeAdapter, ValidationError, field_validator
from pydantic.dataclasses import dataclass
from hildanext.config.decode import BenchParams, DecodeParams, DInferParams, EvalParams, ServeParams
from hildanext.config.types import STRICT, NonNeg, ParamsError, Pos, PosFloat, Rate

@dataclass(config=STRICT)
class DemoParams:
    stories: Pos = 4000
    seed: NonNeg = 1234
    vocab_size: Annotated[int, Field(ge=300, le=65536)] = 1024
    vocab_multiple: Pos = 64
    hidden_size: Pos = 96
    intermediate_size: Pos = 256
    num_layers: Pos = 4
    num_heads: Pos = 4
    num_kv_heads: Pos = 2
    head_dim: Pos = 24
    seq_len: Annotated[int, Field(ge=8)] = 128
    batch_size: Pos = 16
    steps: Pos = 600
    lr: PosFloat = 3e-3
    warmup_steps: NonNeg = 50

@dataclass(config=STRICT)
class ModelParams:
    base: str = "demo"
    hub_id: str = "Qwen/Qwen3-0.6B"
    revision: Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")] = "c1899de289a04d12100db370d81485cdf75e47ca"
    local_dir: str = "models/qwen3-0.6b"
    mask_token: str = "<|mask|>"

SOURCE_KINDS = ("auto", "demo", "dolma", "tinystories", "jsonl", "txt", "parquet")
@dataclass(config=STRICT)
class SourceParams:
    kind: Literal[SOURCE_KINDS] = "auto"
    paths: tuple[str, ...] = ()
    name: str = ""
    weight: PosFloat = 1.0
    max_tokens: NonNeg = 0

@dataclass(config=STRICT)
class FetchDataParams:
    dest: str = "data/raw"
    dolma_revision: Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")] = "4424757a5e782ede5ec1004432ed5c3cceeda31b"
    dolma_url_list: str = "urls/v1_6-sample.txt"
    dolma_shards: NonNeg = 1
    dolma_max_bytes: NonNeg = 0
    tinystories_revision: Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")] = "f54c09fd23315a6f9c86f9dc80f725de7d8f9c64"
    tinystories_files: tuple[str, ...] = ("TinyStoriesV2-GPT4-valid.txt",)

@dataclass(config=STRICT)
class DataParams:
    sources: tuple[SourceParams, ...] = (SourceParams(kind="demo"),)
    demo_stories: Pos = 4000
    demo_seed: NonNeg = 2024
    mix_stop: Literal["all", "first"] = "all"
    bytes_per_token: PosFloat = 4.0
    min_chars: NonNeg = 20
    max_chars: Pos = 1_000_000
    max_line_bytes: Pos = 16_000_000
    dedup: bool = True
    eval_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.05
    split_seed: NonNeg = 0
    fetch: FetchDataParams = dataclasses.field(default_factory=FetchDataParams)
    @field_validator("sources", mode="before")
    @classmethod
    def source_strings(cls, value):
        items = [value] if isinstance(value, (str, dict)) else value
        return tuple(parse_source(v) if isinstance(v, str) else v for v in items)

def parse_source(text: str) -> dict:
    kind, sep, path = text.partition(":")
    if sep and kind in SOURCE_KINDS:
        return {"kind": kind, "paths": tuple(p for p in path.split(",") if p)}
    return {"kind": "demo"} if text == "demo" else {"kind": "auto", "paths": tuple(text.split(","))}

@dataclass(config=STRICT)
class TokenizeParams:
    seq_len: Annotated[int, Field(ge=8)] = 128
    batch_docs: Pos = 1000
    tokenizer: str = "models/init"

@dataclass(config=STRICT)
class ObjectiveParams:
    t_eps: Annotated[float, Field(gt=0, lt=1)] = 1e-3
    t_per: Literal["block", "sequence"] = "block"
    t2t_rate: Rate = 0.1
    t2t_weight: Annotated[float, Field(ge=0)] = 1.0
    keep_rate: Rate = 0.1
    keep_weight: Annotated[float, Field(ge=0)] = 0.1
    embed_noise_std: Annotated[float, Field(ge=0)] = 1.0
    embed_noise_steps: NonNeg = 100
    shift: bool = False

@dataclass(config=STRICT)
class TrainParams:
    lr: PosFloat = 1e-4
    lr_warmup_steps: NonNeg = 100
    lr_decay: Literal["none", "cosine", "linear"] = "none"
    min_lr_ratio: Rate = 0.1
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    betas: tuple[Rate, Rate] = (0.9, 0.95)
    batch_size: Pos = 8
    grad_accum: Pos = 1
    clip: PosFloat = 1.0
    checkpoint_every: Pos = 10
    keep_last: Pos = 2
    keep_best: NonNeg = 3
    eval_rows: Pos = 64
    eval_seed: NonNeg = 1234
    seed: NonNeg = 0
    eval_draws: Pos = 1

@dataclass(config=STRICT)
class WsdParams(TrainParams):
    warmup_blocks: tuple[NonNeg, ...] = (1, 4, 32, 64)
    warmup_steps: tuple[Pos, ...] = (40,)
    stable_steps: NonNeg = 120
    decay_to: Pos = 32
    decay_blocks: tuple[Pos, ...] = ()
    decay_steps: tuple[Pos, ...] = (40,)
    block_align: Literal["row", "document"] = "row"
    decay_cap_weight: Annotated[float, Field(ge=0)] = 0.0

@dataclass(config=STRICT)
class MergeParams:
    top_k: Pos = 3

@dataclass(config=STRICT)
class LoraParams:
    r: Pos = 16
    alpha: PosFloat = 32.0
    dropout: Rate = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    quantize: Literal["none", "4bit"] = "none"

@dataclass(config=STRICT)
class SftDataParams:
    sources: tuple[str, ...] = ("demo",)
    demo_examples: Pos = 2000
    demo_seed: NonNeg = 7
    eval_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.05
    split_seed: NonNeg = 0
    seq_len: Annotated[int, Field(ge=8)] = 256
    tokenizer: str = "models/init"

@dataclass(config=STRICT)
class SftParams(TrainParams):
    mask_range: tuple[Rate, Rate] = (0.3, 0.8)
    loss_weight: Literal["inv_t", "none"] = "inv_t"
    complementary: bool = True
    mtf: bool = True
    mtf_weight: Annotated[float, Field(ge=0)] = 1.0
    cap_weight: Annotated[float, Field(ge=0)] = 2.0
    steps: Pos = 120
    lr_decay: Literal["none", "cosine", "linear"] = "cosine"
    checkpoint_every: Pos = 20
    keep_best: NonNeg = 2
    cap_temperature: PosFloat = 1.0
    kd_weight: Annotated[float, Field(ge=0)] = 0.0
    kd_temperature: PosFloat = 1.0
    semi_ar_rate: Rate = 0.0
    t2t_draft_rate: Rate = 0.0
    @field_validator("mask_range")
    @classmethod
    def ordered(cls, value):
        if value[0] > value[1]:
            raise ValueError(f"low {value[0]} > high {value[1]}")
        return value

@dataclass(config=STRICT)
class DistillDataParams:
    """The AR base's continuations of train-split openings and answers to train-split SFT prompts."""
    continuations: NonNeg = 20000
    answers: NonNeg = 5000
    opening_tokens: tuple[Pos, Pos] = (4, 256)
    sentence_share: Rate = 0.5
    new_tokens: Pos = 256
    temperature: Annotated[float, Field(ge=0)] = 0.0
    batch_size: Pos = 32
    shard_prompts: Pos = 512
    eval_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.05
    seed: NonNeg = 0

DISTILL = {"mask_range": (0.3, 1.0), "kd_weight": 1.0, "semi_ar_rate": 0.5, "t2t_draft_rate": 0.5,
           "cap_temperature": 0.5}
@dataclass(config=STRICT)
class RuntimeParams:
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "bfloat16", "float16", "float64"] = "float32"
    profile: Literal["cpu", "gtx1080", "ampere"] = "cpu"
    threads: NonNeg = 0
    seed: NonNeg = 0
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    log_every: Pos = 10
    experiment: str = "hildanext"
    micro_batch: NonNeg | None = None
    grad_ckpt: bool | None = None
    max_vram_pct: Annotated[float, Field(gt=0, le=1)] | None = None
    autocast: Literal["none", "bf16", "fp16"] | None = None
    sdpa_backend: Literal["auto", "mem_efficient", "math"] | None = None
    optimizer: Literal["adamw", "adamw8bit"] | None = None
    train_embeddings: Literal["all", "mask_row"] | None = None
    adapter: Literal["none", "lora"] | None = None
    cuda_graphs: bool = False

@dataclass(config=STRICT)
class Params:
    model: ModelParams = dataclasses.field(default_factory=ModelParams)
    demo_base: DemoParams = dataclasses.field(default_factory=DemoParams)
    prepare: DataParams = dataclasses.field(default_factory=DataParams)
    tokenize: TokenizeParams = dataclasses.field(default_factory=TokenizeParams)
    sft_data: SftDataParams = dataclasses.field(default_factory=SftDataParams)
    objective: ObjectiveParams = dataclasses.field(default_factory=ObjectiveParams)
    wsd: WsdParams = dataclasses.field(default_factory=WsdParams)
    merge: MergeParams = dataclasses.field(default_factory=MergeParams)
    lora: LoraParams = dataclasses.field(default_factory=LoraParams)
    sft: SftParams = dataclasses.field(default_factory=SftParams)
    distill_data: DistillDataParams = dataclasses.field(default_factory=DistillDataParams)
    distill: SftParams = dataclasses.field(default_factory=lambda: SftParams(**DISTILL))
    runtime: RuntimeParams = dataclasses.field(default_factory=RuntimeParams)
    decode: DecodeParams = dataclasses.field(default_factory=DecodeParams)
    dinfer: DInferParams = dataclasses.field(default_factory=DInferParams)
    bench: BenchParams = dataclasses.field(default_factory=BenchParams)
    eval: EvalParams = dataclasses.field(default_factory=EvalParams)
    serve: ServeParams = dataclasses.field(default_factory=ServeParams)

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

def validate(raw: dict, source: str) -> Params:
    try:
        return TypeAdapter(Params).validate_python(raw)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        unknown = err["type"] in ("extra_forbidden", "unexpected_keyword_argument")
        what = "unknown key" if unknown else f"{err['msg']} (got {err['input']!r})"
        raise ParamsError(f"{source}: {key}: {what}") from None

def load_params(path: str | Path = "params.yaml", overrides=()) -> Params:
    return validate(apply_overrides(read_yaml(Path(path)), overrides, f"{path} --set"), str(path))

def merge_dicts(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge_dicts(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out

def merge_overlay(params_path: Path, overlay_path: Path) -> Params:
    merged = merge_dicts(read_yaml(params_path), read_yaml(overlay_path))
    params = validate(merged, f"{params_path} + {overlay_path}")
    Path(params_path).write_text(yaml.safe_dump(merged, sort_keys=False))
    return params

def as_dict(params) -> dict:
    return dataclasses.asdict(params)

def flatten(tree, prefix: str = "") -> dict:
    tree = as_dict(tree) if dataclasses.is_dataclass(tree) else tree
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out.update(flatten(value, name + ".") if isinstance(value, dict) else {name: value})
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
DECODE_CHOICE = ("the decode frontier's pick on the demo (docs/RESULTS.md, issue 26); DecodeParams keeps the official "
                 "LLaDA2.1 semantics and S/Q values, so decode.exact and the reference tests need no overlay")
POLICY_KEYS = ("stop_in_block", "fallback", "carry_next")
DECODE_CHOSEN = ("tau_mask", "max_post_steps", *POLICY_KEYS, "presets.S_MODE.tau_mask", "presets.S_MODE.max_post_steps",
                 "presets.Q_MODE.tau_mask", "presets.Q_MODE.tau_edit", "presets.Q_MODE.confidence",
                 *(f"presets.{m}.{k}" for m in ("S_MODE", "Q_MODE") for k in POLICY_KEYS))
RECIPE_VALUES = {
    "objective.shift": "token shift won the demo ablation (docs/RESULTS.md); ObjectiveParams keeps LLaDA2.x's "
                       "same-position default, so params.yaml and the gtx1080 overlay turn it on",
    **{f"decode.{key}": DECODE_CHOICE for key in DECODE_CHOSEN},
}
