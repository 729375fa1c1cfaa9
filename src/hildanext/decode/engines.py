# One Engine interface over every decoder: `generate(prompt, mode, tau_mask, tau_edit, max_new_tokens, seed)
# -> str` and the richer `complete(Request, observer) -> Completion` (ids, trace, stats, finish_reason).
# TransformersEngine is our block-diffusion decoder (the default), AREngine the autoregressive baseline, and
# DInferEngine (hildanext.decode.dinfer) the optional dInfer worker. Entry points: Request, Completion, Engine,
# TransformersEngine, AREngine, make_engine(name, model_dir, params), cut_at_stop_strings.
from dataclasses import dataclass, field
from pathlib import Path
from hildanext.config import Params, ParamsError
from hildanext.decode.decoder import DecodeResult
from hildanext.decode.settings import ar_generate_ids, decode_settings, encode_prompt, load_decoder, stop_token_ids, suppressed_ids
from hildanext.model import load_model
ENGINES = ("transformers", "ar", "dinfer")
@dataclass
class Request:
    prompt: str
    mode: str | None = "S"
    tau_mask: float | None = None
    tau_edit: float | None = None
    max_new_tokens: int | None = None
    seed: int = 0
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    chat: bool = False
    remask: bool | None = None

@dataclass
class Completion:
    text: str
    ids: list[int]
    finish_reason: str
    prompt_tokens: int
    result: DecodeResult
    engine: str
    notices: list[str] = field(default_factory=list)

def cut_at_stop_strings(text: str, stops) -> tuple[str, bool]:
    """The text before the earliest stop string, and whether one was found."""
    hits = [text.find(s) for s in stops if s and s in text]
    return (text[: min(hits)], True) if hits else (text, False)

class Engine:
    """Holds a model and its tokenizer; subclasses implement decode(request, prompt_ids, observer)."""
    name = "engine"
    def __init__(self, model, tokenizer, params: Params, model_dir: Path | None = None):
        self.model, self.tokenizer, self.params, self.model_dir = model, tokenizer, params, model_dir
        self.eos_id, self.stop_ids = stop_token_ids(tokenizer)
        self.suppress = suppressed_ids(tokenizer, model.config.vocab_size, [self.eos_id, *self.stop_ids])
    def settings(self, request: Request) -> dict:
        explicit = {"tau_mask": request.tau_mask, "tau_edit": request.tau_edit, "max_new_tokens": request.max_new_tokens, "temperature": request.temperature, "seed": request.seed, "remask_pass": request.remask}
        return decode_settings(self.params.decode, request.mode, **explicit)
    def complete(self, request: Request, observer=None) -> Completion:
        prompt_ids = encode_prompt(self.tokenizer, request.prompt, request.chat)
        result, notices = self.decode(request, prompt_ids, observer)
        text, cut = cut_at_stop_strings(self.tokenizer.decode(result.ids, skip_special_tokens=True), request.stop)
        stopped = cut or bool(result.ids and result.ids[-1] in (self.eos_id, *self.stop_ids))
        return Completion(text, result.ids, "stop" if stopped else "length", len(prompt_ids), result, self.name, notices)
    def generate(self, prompt: str, mode: str = "S", tau_mask: float | None = None, tau_edit: float | None = None, max_new_tokens: int | None = None, seed: int = 0) -> str:
        return self.complete(Request(prompt, mode, tau_mask, tau_edit, max_new_tokens, seed)).text
    def decode(self, request: Request, prompt_ids: list[int], observer) -> tuple[DecodeResult, list[str]]:
        raise NotImplementedError

class TransformersEngine(Engine):
    name = "transformers"
    def decode(self, request: Request, prompt_ids: list[int], observer) -> tuple[DecodeResult, list[str]]:
        from hildanext.decode.decoder import generate_ids
        settings = self.settings(request)
        graphs = self.params.runtime.cuda_graphs and self.model.device.type == "cuda"
        result = generate_ids(self.model, prompt_ids, mask_id=self.tokenizer.mask_token_id, eos_id=self.eos_id, stop_ids=self.stop_ids, suppress_ids=self.suppress, cuda_graphs=graphs, observer=observer, **settings)
        return result, []

class AREngine(Engine):
    """The autoregressive baseline (Hugging Face generate); decode modes and taus do not apply."""
    name = "ar"
    def decode(self, request: Request, prompt_ids: list[int], observer) -> tuple[DecodeResult, list[str]]:
        s = self.settings(request)
        result = ar_generate_ids(self.model, prompt_ids, eos_id=self.eos_id, stop_ids=self.stop_ids, suppress_ids=self.suppress, max_new_tokens=s["max_new_tokens"], temperature=s["temperature"], top_k=s["top_k"], top_p=s["top_p"], seed=s["seed"])
        if observer is not None:
            observer({"type": "block", "block": 0, "ids": result.ids})
        return result, []

def make_engine(name: str, model_dir: Path, params: Params) -> Engine:
    """Build an engine by name; dinfer falls back to transformers (one warning) where it cannot run."""
    if name not in ENGINES:
        raise ParamsError(f"engine: {name!r} is not one of {', '.join(ENGINES)}")
    if name == "ar":
        model, tokenizer = load_model(Path(model_dir), params.runtime)
        return AREngine(model, tokenizer, params, Path(model_dir))
    model, tokenizer = load_decoder(Path(model_dir), params.runtime)
    if name == "dinfer":
        from hildanext.decode.dinfer import DInferEngine
        return DInferEngine(model, tokenizer, params, Path(model_dir))
    return TransformersEngine(model, tokenizer, params, Path(model_dir))
