# The decode settings, resolved once at the edge: the decode params, then the mode's preset (S or Q), then every
# explicit value that is not None, checked by DecodeParams itself; decode.exact then restores the official LLaDA2.1
# policies (EXACT). A null block size is the model's trained one (another is honoured with one warning line); shift
# is the folder's token shift (ModelInfo.shift, never a decode param). Entry points: resolve_settings ->
# DecodeSettings (the one frozen bundle the decoder takes), SpecialIds, special_ids_for(info, tokenizer, vocab_rows).
import dataclasses, logging
from dataclasses import dataclass
from pydantic import ValidationError
from hildanext.config import DecodeParams, ParamsError
from hildanext.config.decode import POLICIES, RemaskParams
from hildanext.model import ModelInfo, suppressed_ids
MODES = {"S": "S_MODE", "Q": "Q_MODE"}
EXACT = {"stop_in_block": False, "fallback": "confident", "carry_next": False, "confidence": "prob", "sub_block": None}
log = logging.getLogger(__name__)
@dataclass(frozen=True)
class DecodeSettings:
    tau_mask: float
    tau_edit: float
    block_size: int
    max_new_tokens: int
    max_post_steps: int = 16
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    eos_early_stop: bool = True
    seed: int = 0
    remask: RemaskParams | None = None
    cache: bool = True
    cuda_graphs: bool = False
    shift: bool = False
    stop_in_block: bool = False
    fallback: str = "confident"
    carry_next: bool = False
    confidence: str = "prob"
    sub_block: int | None = None
    def __post_init__(self):
        if self.block_size < 1 or self.max_new_tokens < 1 or self.max_post_steps < 0 or self.temperature < 0:
            raise ValueError(f"need block_size, max_new_tokens >= 1, max_post_steps, temperature >= 0: {self}")
        if self.sub_block is not None and (self.sub_block < 1 or self.block_size % self.sub_block):
            raise ValueError(f"decode.sub_block {self.sub_block} does not divide the block size {self.block_size}")
    @property
    def unit(self) -> int:
        """The size of what one pass decodes: the sub-block, or the whole block."""
        return self.sub_block or self.block_size
    def view(self) -> dict:
        """The settings as JSON-ready values, with remask_pass saying whether the remask pass runs."""
        return dataclasses.asdict(self) | {"remask_pass": self.remask is not None}

@dataclass(frozen=True)
class SpecialIds:
    """The ids decoding needs: mask, eos, the other stop ids and the ids never proposed (besides the mask)."""
    mask_id: int | None
    eos_id: int
    stop_ids: tuple[int, ...] = ()
    banned_ids: tuple[int, ...] = ()
    @property
    def stops(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys([self.eos_id, *self.stop_ids]))

def special_ids_for(info: ModelInfo, tokenizer, vocab_rows: int) -> SpecialIds:
    """The folder's ids; banned: unused rows, special and added tokens (the mask too), except the stop tokens."""
    banned = suppressed_ids(tokenizer, vocab_rows, [info.eos_id, *info.stop_ids])
    return SpecialIds(info.mask_id, info.eos_id, info.stop_ids, tuple(banned))

def checked(params: DecodeParams, changes: dict, source: str) -> DecodeParams:
    """DecodeParams with changes, validated by DecodeParams (a bad value names its decode.* key)."""
    try:
        return dataclasses.replace(params, **changes)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ParamsError(f"{source}: decode.{key}: {err['msg']} (got {err['input']!r})") from None

def with_mode(params: DecodeParams, mode: str | None) -> DecodeParams:
    if mode is None:
        return params
    if mode.upper() not in MODES:
        raise ParamsError(f"--mode: {mode!r} is not one of {', '.join(MODES)}")
    preset = dataclasses.asdict(getattr(params.presets, MODES[mode.upper()]))
    changes = {k: v for k, v in preset.items() if v is not None or k not in POLICIES}
    return checked(params, changes, f"mode {mode}")

def block_size_for(requested: int | None, trained: int) -> int:
    """The trained block size unless another one was asked for (honoured, with one warning line)."""
    if requested is not None and requested != trained:
        log.warning("decode block size %d differs from the model's trained block size %d; decoding with %d",
                    requested, trained, requested)
    return trained if requested is None else requested

def resolve_settings(params: DecodeParams, trained_block_size: int, mode: str | None = None, *, cache: bool = True,
                     cuda_graphs: bool = False, shift: bool = False, **explicit) -> DecodeSettings:
    """Active params, then the mode's preset, then every explicit value that is not None; shift is the folder's."""
    names = {f.name for f in dataclasses.fields(DecodeParams)} - {"presets", "remask"}
    if unknown := set(explicit) - names:
        raise ParamsError(f"decode: unknown setting {sorted(unknown)}")
    d = checked(with_mode(params, mode), {k: v for k, v in explicit.items() if v is not None}, "decode settings")
    policies = EXACT if d.exact else {name: getattr(d, name) for name in POLICIES}
    return DecodeSettings(d.tau_mask, d.tau_edit, block_size_for(d.block_size, trained_block_size), d.max_new_tokens,
                          d.max_post_steps, d.temperature, d.top_k, d.top_p, d.eos_early_stop, d.seed,
                          d.remask if d.remask_pass else None, cache, cuda_graphs, shift, **policies)
