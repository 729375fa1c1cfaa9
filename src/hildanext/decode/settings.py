# The decode settings, resolved once at the edge: the decode params, then the mode's preset (S or Q), then every
# explicit value that is not None, checked by DecodeParams itself; a null block size is the model's trained one
# (an explicit other size is honoured with one warning line); shift is the folder's token shift (ModelInfo.shift,
# never a decode param). Entry points: resolve_settings -> DecodeSettings
# (the one frozen bundle the decoder takes), SpecialIds and special_ids_for(info, tokenizer, vocab_rows), MODES.
import dataclasses, logging
from dataclasses import dataclass
from pydantic import ValidationError
from hildanext.config import DecodeParams, ParamsError, RemaskParams
from hildanext.model import ModelInfo, suppressed_ids
MODES = {"S": "S_MODE", "Q": "Q_MODE"}
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
    def __post_init__(self):
        if self.block_size < 1 or self.max_new_tokens < 1 or self.max_post_steps < 0 or self.temperature < 0:
            raise ValueError(f"need block_size, max_new_tokens >= 1, max_post_steps, temperature >= 0: {self}")
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
    return checked(params, dataclasses.asdict(getattr(params.presets, MODES[mode.upper()])), f"mode {mode}")

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
    return DecodeSettings(d.tau_mask, d.tau_edit, block_size_for(d.block_size, trained_block_size), d.max_new_tokens,
                          d.max_post_steps, d.temperature, d.top_k, d.top_p, d.eos_early_stop, d.seed,
                          d.remask if d.remask_pass else None, cache, cuda_graphs, shift)
