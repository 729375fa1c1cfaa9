# One Engine interface over every decoder: prepare(Request) -> Prepared (prompt encoded, settings resolved once),
# run(Prepared, observer) -> Completion (ids, trace, stats, finish_reason); complete(Request, observer) does both,
# generate(prompt, mode, ...) -> str. DiffusionEngine is our block-diffusion decoder (the default; it stops after the
# block where a stop string appears); ENGINES names every engine's class (ar: decode/ar.py, dinfer: decode/dinfer.py,
# imported on use; alias "transformers" = diffusion). Entry points: Request, Prepared, Completion, Engine,
# DiffusionEngine, engine_class, make_engine(name, model_dir, params) (stop strings: decode/decoder.py).
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from hildanext.config import Params, ParamsError
from hildanext.decode.batch import DiffusionSession, SerialSession, run_all
from hildanext.decode.decoder import DecodeResult, cut_at_stop_strings, generate_ids, stop_watch
from hildanext.decode.settings import DecodeSettings, resolve_settings, special_ids_for
from hildanext.model import ModelInfo, encode_prompt, load_decoder, load_model, read_model_info
ENGINES = {"diffusion": "hildanext.decode.engines:DiffusionEngine", "ar": "hildanext.decode.ar:AREngine",
           "dinfer": "hildanext.decode.dinfer:DInferEngine"}
ALIASES = {"transformers": "diffusion"}
@dataclass(kw_only=True)
class Request:
    """One generation request; mode None decodes with the decode params; policies: other decode params by name."""
    prompt: str
    mode: str | None = None
    tau_mask: float | None = None
    tau_edit: float | None = None
    max_new_tokens: int | None = None
    seed: int | None = None
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    chat: bool = False
    remask: bool | None = None
    policies: dict = field(default_factory=dict)

@dataclass(frozen=True)
class Prepared:
    """A request with its prompt ids and its decode settings, resolved once."""
    request: Request
    prompt_ids: list[int]
    settings: DecodeSettings

@dataclass
class Completion:
    text: str
    ids: list[int]
    finish_reason: str
    prompt_tokens: int
    result: DecodeResult
    engine: str
    notices: list[str] = field(default_factory=list)

class Engine:
    """A model, its tokenizer and what its folder says (ModelInfo); subclasses implement decode."""
    name, needs_mask = "engine", True
    def __init__(self, model, tokenizer, params: Params, model_dir: Path | None = None, info: ModelInfo | None = None):
        self.model, self.tokenizer, self.params, self.model_dir = model, tokenizer, params, model_dir
        self.info = info or read_model_info(model_dir, tokenizer)
        self.special = special_ids_for(self.info, tokenizer, model.config.vocab_size)
    @property
    def trained_block_size(self) -> int:
        """The folder's recorded block size; a folder that records none was trained to wsd.decay_to."""
        return self.info.block_size or self.params.wsd.decay_to
    def resolve(self, request: Request) -> DecodeSettings:
        explicit = {"tau_mask": request.tau_mask, "tau_edit": request.tau_edit, "seed": request.seed,
                    "max_new_tokens": request.max_new_tokens, "temperature": request.temperature,
                    "remask_pass": request.remask} | request.policies
        graphs = self.params.runtime.cuda_graphs and self.model.device.type == "cuda"
        trained = self.trained_block_size
        return resolve_settings(self.params.decode, trained, request.mode, cuda_graphs=graphs, shift=self.info.shift,
                                **explicit)
    def prepare(self, request: Request) -> Prepared:
        return Prepared(request, encode_prompt(self.tokenizer, request.prompt, request.chat), self.resolve(request))
    def run(self, prepared: Prepared, observer=None) -> Completion:
        return self.completion(prepared, *self.decode(prepared, observer))
    def completion(self, prepared: Prepared, result: DecodeResult, notices=()) -> Completion:
        """The text (cut at the first stop string) and finish reason of one decoded request."""
        text = self.tokenizer.decode(result.ids, skip_special_tokens=True)
        text, cut = cut_at_stop_strings(text, prepared.request.stop)
        stopped = cut or bool(result.ids and result.ids[-1] in self.special.stops)
        reason = "stop" if stopped else "length"
        return Completion(text, result.ids, reason, len(prepared.prompt_ids), result, self.name, list(notices))
    def complete(self, request: Request, observer=None) -> Completion:
        return self.run(self.prepare(request), observer)
    def generate(self, prompt: str, mode: str | None = None, **knobs) -> str:
        """The text of one request (knobs: Request's fields by name)."""
        return self.complete(Request(prompt=prompt, mode=mode, **knobs)).text
    def decode(self, prepared: Prepared, observer) -> tuple[DecodeResult, list[str]]:
        raise NotImplementedError
    def session(self, max_rows: int):
        """Rows decoding together (decode/batch.py); this engine runs them one at a time."""
        return SerialSession(self, max_rows)
    def run_batch(self, prepared: list[Prepared], observers=None, max_rows: int = 8) -> list[Completion]:
        """Every prepared request through one session of up to max_rows rows; completions in request order."""
        return run_all(self.session(max_rows), prepared, observers)

class DiffusionEngine(Engine):
    """Our block-diffusion decoder (decode/decoder.py) on the folder's ids and the resolved settings."""
    name = "diffusion"
    def decode(self, prepared: Prepared, observer) -> tuple[DecodeResult, list[str]]:
        watch = stop_watch(self.tokenizer, prepared.request.stop, observer) if prepared.request.stop else observer
        return generate_ids(self.model, prepared.prompt_ids, prepared.settings, self.special, watch), []
    def session(self, max_rows: int):
        """The batched decoder (decode/batch.py DiffusionSession): rows decode together, each as it would alone."""
        return DiffusionSession(self, max_rows)

def engine_class(name: str) -> type[Engine]:
    """The engine class registered under name (or its alias), imported on first use."""
    name = ALIASES.get(name, name)
    if name not in ENGINES:
        raise ParamsError(f"engine: {name!r} is not one of {', '.join([*ENGINES, *ALIASES])}")
    module, _, cls = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), cls)

def make_engine(name: str, model_dir: Path, params: Params) -> Engine:
    """Load the folder and build the engine by name (dinfer falls back to diffusion where it cannot run)."""
    cls = engine_class(name)
    model, tokenizer = (load_decoder if cls.needs_mask else load_model)(Path(model_dir), params.runtime)
    return cls(model, tokenizer, params, Path(model_dir))
