# The typed, frozen params of decoding and of what decodes: decode (taus, policies, presets, remask), dinfer,
# serve, bench (its frontier points) and eval; hildanext.config.Params bundles them with the other sections.
# Entry points: DecodeParams, DecodeMode, DecodePresets, RemaskParams, POLICIES, DInferParams, ServeParams,
# ENGINE_NAMES, FrontierPoint, FRONTIER, BenchParams, EvalParams.
import dataclasses
from typing import Annotated, Literal
from pydantic import Field, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass
from hildanext.config.types import STRICT, NonNeg, Pos, PosFloat, Rate
FALLBACKS = ("confident", "leftmost")
CONFIDENCES = ("prob", "margin", "entropy")
POLICIES = ("stop_in_block", "fallback", "carry_next", "confidence", "sub_block")
@dataclass(config=STRICT)
class DecodeMode:
    """A preset: its taus and post steps, and the decode policies it sets (None: the decode params' own)."""
    tau_mask: Rate
    tau_edit: Rate
    block_size: Pos | None = None
    max_post_steps: NonNeg = 16
    stop_in_block: bool | None = None
    fallback: Literal[FALLBACKS] | None = None
    carry_next: bool | None = None
    confidence: Literal[CONFIDENCES] | None = None
    sub_block: Pos | None = None

@dataclass(config=STRICT)
class DecodePresets:
    S_MODE: DecodeMode = dataclasses.field(default_factory=lambda: DecodeMode(tau_mask=0.5, tau_edit=0.0))
    Q_MODE: DecodeMode = dataclasses.field(default_factory=lambda: DecodeMode(tau_mask=0.7, tau_edit=0.5))

@dataclass(config=STRICT)
class RemaskParams:
    target_ratio: Rate = 0.15
    min_ratio: Rate = 0.05
    block_size: Pos = 64
    block_stride: Pos = 32
    percentile_safety: Annotated[float, Field(gt=0, le=1)] = 0.95
    @field_validator("min_ratio")
    @classmethod
    def at_most_target(cls, value, info: ValidationInfo):
        target = info.data.get("target_ratio")
        if target is not None and value > target:
            raise ValueError(f"min_ratio {value} > target_ratio {target}")
        return value

@dataclass(config=STRICT)
class DecodeParams:
    tau_mask: Rate = 0.5
    tau_edit: Rate = 0.0
    block_size: Pos | None = None
    max_post_steps: NonNeg = 16
    temperature: Annotated[float, Field(ge=0)] = 0.0
    top_k: Pos | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    max_new_tokens: Pos = 128
    eos_early_stop: bool = True
    seed: NonNeg = 0
    remask_pass: bool = False
    stop_in_block: bool = False
    fallback: Literal[FALLBACKS] = "confident"
    carry_next: bool = False
    confidence: Literal[CONFIDENCES] = "prob"
    sub_block: Pos | None = None
    exact: bool = False
    remask: RemaskParams = dataclasses.field(default_factory=RemaskParams)
    presets: DecodePresets = dataclasses.field(default_factory=DecodePresets)

@dataclass(config=STRICT)
class DInferParams:
    python: str = ".venv-dinfer/bin/python"
    timeout_s: PosFloat = 300.0
    min_compute_capability: PosFloat = 8.0

ENGINE_NAMES = ("diffusion", "transformers", "ar", "dinfer")
@dataclass(config=STRICT)
class ServeParams:
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    engine: Literal[ENGINE_NAMES] = "diffusion"
    model_candidates: tuple[str, ...] = ("models/export", "models/sft", "models/merged", "models/init")
    queue_size: Pos = 32
    max_batch: Pos = 8
    batch_wait_s: Annotated[float, Field(ge=0)] = 0.02
    request_timeout_s: PosFloat = 300.0
    max_new_tokens_limit: Pos = 1024
    max_context: NonNeg = 0
    retry_after_s: Pos = 1
    max_jobs: Pos = 100
    max_job_prompts: Pos = 64

@dataclass(config=STRICT)
class FrontierPoint:
    """A frontier point: taus, a series label and the decode policies it sets (None: the decode params' own)."""
    tau_mask: Rate
    tau_edit: Rate
    series: str = ""
    exact: bool | None = None
    stop_in_block: bool | None = None
    fallback: Literal[FALLBACKS] | None = None
    carry_next: bool | None = None
    confidence: Literal[CONFIDENCES] | None = None
    sub_block: Pos | None = None
    max_post_steps: NonNeg | None = None
    def __post_init__(self):
        if self.exact and any(getattr(self, name) is not None for name in POLICIES):
            raise ValueError("exact: true forces the official policies; leave the policies of this point unset")

POINT_KNOBS = (*POLICIES, "max_post_steps")
OFFICIAL_TAUS = ((0.5, 0.0), (0.7, 0.5), (0.5, 1.0), (0.9, 1.0))
POLICY_TAUS = ((0.5, 0.0), (0.3, 0.0), (0.5, 1.0), (0.7, 1.0), (0.9, 1.0))
POLICY_SET = {"stop_in_block": True, "fallback": "leftmost", "carry_next": True, "confidence": "prob"}
ENTROPY = POLICY_SET | {"confidence": "entropy"}
FRONTIER = (*(FrontierPoint(m, e, "official", exact=True, max_post_steps=16) for m, e in OFFICIAL_TAUS),
            *(FrontierPoint(m, e, "policies", **POLICY_SET) for m, e in POLICY_TAUS),
            *(FrontierPoint(m, e, "policies + entropy", **ENTROPY) for m, e in ((0.7, 1.0), (0.6, 0.5), (0.8, 1.0))),
            FrontierPoint(0.5, 0.0, "policies + sub_block 8", **POLICY_SET, sub_block=8),
            FrontierPoint(0.3, 0.0, "policies + margin", **POLICY_SET | {"confidence": "margin"}))
@dataclass(config=STRICT)
class BenchParams:
    model: str = "best"
    ar_model: str = ""
    engine: Literal[ENGINE_NAMES] = "diffusion"
    eval_rows: Pos = 32
    mc_samples: Pos = 4
    mc_seed: NonNeg = 0
    openings: Pos = 32
    opening_tokens: Pos = 16
    max_new_tokens: Pos = 64
    seed: NonNeg = 0
    code: bool = True
    repeats: Pos = 3
    cost_repeats: Pos = 20
    batch_size: Pos = 8
    frontier: tuple[FrontierPoint, ...] = FRONTIER
    frontier_repeats: Pos = 1
    s_max_ppl_ratio: Annotated[float, Field(ge=1)] = 1.25
    candidates: tuple[str, ...] = ("models/merged", "models/sft", "models/distilled")
    candidate_repeats: Pos = 1
    candidate_slack: Annotated[float, Field(ge=1)] = 1.15
    @field_validator("frontier")
    @classmethod
    def distinct_points(cls, value):
        if len({dataclasses.replace(p, series="") for p in value}) < len(value):
            raise ValueError("two frontier points set the same taus and policies")
        return value

@dataclass(config=STRICT)
class EvalParams:
    """lm-eval on eval.model and the AR base: tasks (shipped or standard), docs written per shipped task."""
    model: str = "models/export"
    ar_model: str = ""
    tasks: tuple[str, ...] = ("hildanext_demo",)
    docs: Pos = 24
    limit: Pos | None = None
    num_fewshot: NonNeg | None = None
    mode: Literal["S", "Q"] | None = None
    mc_num: Pos = 16
    batch_size: Pos = 16
    seed: NonNeg = 0

