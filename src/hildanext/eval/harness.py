# lm-evaluation-harness models (registered on `import hildanext`): "hildanext", our block-diffusion model as an
# lm-eval TemplateLM (generate_until: each task's requests through the engine's run_batch, batch_size rows at a
# time; loglikelihood and loglikelihood_rolling as the block ELBO of eval/likelihood.py, labelled a bound), and
# "hf-counted", lm-eval's own HFLM that only counts. Both keep per-task counts (requests, generated tokens, row
# forwards, the prefill among them, seconds; TPF by decoder.tokens_per_forward, prefill excluded). Entry points:
# HarnessArgs, HildanextLM, CountingHFLM, task_rows(meter).
import dataclasses, logging, time
from pathlib import Path
from typing import Literal
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, resolve_max_length
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from pydantic import ValidationError
from pydantic.dataclasses import dataclass
from hildanext.config import STRICT, Params, ParamsError, load_params, validate
from hildanext.decode.decoder import tokens_per_forward
from hildanext.decode.engines import Request, make_engine
from hildanext.eval.likelihood import ElboSpec, elbo_loglik, greedy_matches
from hildanext.model import recorded_params
log = logging.getLogger(__name__)
@dataclass(config=STRICT)
class HarnessArgs:
    """The hildanext model's model_args (lm-eval passes them as key=value strings, converted on the way)."""
    pretrained: str
    mode: Literal["S", "Q"] | None = None
    tau_mask: float | None = None
    tau_edit: float | None = None
    mc_num: int = 16
    batch_size: int = 16
    seed: int = 0
    block_size: int | None = None
    max_length: int | None = None
    max_gen_toks: int = 256
    greedy: bool = True
    params: str | None = None
    device: str | None = None

def harness_args(kwargs: dict) -> HarnessArgs:
    """HarnessArgs from model_args; lm-eval's batch_size "auto" keeps the default; a bad key names itself."""
    kwargs = {k: v for k, v in kwargs.items() if k != "max_batch_size" and v is not None}
    if not str(kwargs.get("batch_size", "1")).isdigit():
        kwargs.pop("batch_size")
    try:
        return HarnessArgs(**kwargs)
    except (ValidationError, TypeError) as e:
        raise ParamsError(f"--model hildanext model_args: {e}") from None

def harness_params(args: HarnessArgs) -> Params:
    """params from args.params (a params.yaml), else those the folder recorded, else the defaults; device applied."""
    if args.params:
        params = load_params(args.params)
    else:
        recorded = recorded_params(Path(args.pretrained))
        params = validate(recorded, f"{args.pretrained}/hildanext.json") if recorded else Params()
    if args.device:
        runtime = dataclasses.replace(params.runtime, device=device_kind(args.device))
        params = dataclasses.replace(params, runtime=runtime)
    return params

def device_kind(device: str) -> str:
    """lm-eval's --device (its CLI default is cuda:0) as runtime.device: cpu where CUDA is missing, one warning."""
    import torch
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        log.warning("--device %s: CUDA is not available here; evaluating on the CPU", device)
        return "cpu"
    return kind

@dataclasses.dataclass
class TaskCounts:
    requests: int = 0
    tokens: int = 0
    forwards: int = 0
    prefill_forwards: int = 0
    seconds: float = 0.0
    def row(self) -> dict:
        """The counts; generations add TPF (the one formula: forwards after the prefill) and tokens/s."""
        tpf = tokens_per_forward(self.tokens, self.forwards - self.prefill_forwards)
        rates = {"tpf": tpf, "tokens_per_s": self.tokens / max(self.seconds, 1e-9)}
        return dataclasses.asdict(self) | (rates if self.tokens else {})

def task_rows(meter: dict) -> dict:
    """{task: {request kind: counts (and TPF, tokens/s for generations)}}."""
    return {task: {kind: counts.row() for kind, counts in kinds.items()} for task, kinds in meter.items()}

class Metered:
    """Per-task, per-kind counts around lm-eval's three request methods; forwards are rows through the base model."""
    def start_meter(self, model) -> None:
        self.meter, self.forwards, self.prefills = {}, 0, 0
        model.base_model.register_forward_hook(self.count_forward)
    def count_forward(self, module, inputs, output) -> None:
        """A batched forward of n rows counts n (TPF per sequence, whatever the batch)."""
        self.forwards += output[0].shape[0]
    def metered(self, kind: str, requests: list, run) -> list:
        by_task, results = {}, [None] * len(requests)
        for index, request in enumerate(requests):
            by_task.setdefault(request.task_name or "unnamed", []).append(index)
        for task, indices in by_task.items():
            before, prefills, started = self.forwards, self.prefills, time.perf_counter()
            outputs = run([requests[i] for i in indices])
            counts = self.meter.setdefault(task, {}).setdefault(kind, TaskCounts())
            counts.prefill_forwards += self.prefills - prefills
            counts.requests, counts.forwards = counts.requests + len(indices), counts.forwards + self.forwards - before
            counts.seconds += time.perf_counter() - started
            if kind == "generate_until":
                counts.tokens += sum(len(self.tok_encode(text, add_special_tokens=False)) for text in outputs)
            for i, output in zip(indices, outputs, strict=True):
                results[i] = output
        log.info("lm-eval counts: %s", task_rows(self.meter))
        return results
    def raw(self, kind: str):
        """The unmetered request method of that kind (the next class's, unless a subclass answers it itself)."""
        return getattr(super(Metered, self), kind)
    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return self.metered("loglikelihood", requests, lambda part: self.raw("loglikelihood")(part, True))
    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        run = self.raw("loglikelihood_rolling")
        return self.metered("loglikelihood_rolling", requests, lambda part: run(part, True))
    def generate_until(self, requests, disable_tqdm: bool = False):
        return self.metered("generate_until", requests, lambda part: self.raw("generate_until")(part, True))

@register_model("hildanext")
class HildanextLM(Metered, TemplateLM):
    """hildanext's block-diffusion model: the folder's mask id, stops, block size and token shift (hildanext.json)."""
    def __init__(self, engine=None, **model_args):
        super().__init__()
        self.args = harness_args(model_args)
        self.engine = engine or make_engine("diffusion", Path(self.args.pretrained), harness_params(self.args))
        self.tokenizer, self.model = self.engine.tokenizer, self.engine.model
        self.spec = ElboSpec(self.engine.info.mask_id, self.args.block_size or self.engine.trained_block_size,
                             self.engine.info.shift, self.args.mc_num, self.args.batch_size, self.args.seed)
        self.start_meter(self.model)
    @property
    def eot_token_id(self) -> int:
        return self.engine.info.eos_id
    @property
    def max_length(self) -> int:
        return self.args.max_length or resolve_max_length(self.model.config, self.tokenizer)
    @property
    def tokenizer_name(self) -> str:
        return self.args.pretrained.replace("/", "__")
    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        special = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        return self.tokenizer.encode(string, **special)
    def apply_chat_template(self, chat_history: list[dict], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False, enable_thinking=False,
                                                  add_generation_prompt=add_generation_prompt)
    def raw(self, kind: str):
        own = {"loglikelihood_rolling": self.rolling_bounds, "generate_until": self.generations}
        return own.get(kind) or super().raw(kind)
    def scored(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        """(ELBO, greedy) of the last max_length + 1 tokens, as HFLM truncates (the context from the left)."""
        ids = [*context, *continuation][-(self.max_length + 1) :]
        cut = max(len(ids) - len(continuation), 1)
        context, continuation = ids[:cut], ids[cut:]
        bound = elbo_loglik(self.model, context, continuation, self.spec)
        return bound, self.args.greedy and greedy_matches(self.model, context, continuation, self.spec)
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        out = []
        for key, context, continuation in requests:
            out.append(self.scored(context, continuation))
            self.cache_hook.add_partial("loglikelihood", key, out[-1])
        return out
    def rolling_bounds(self, requests, disable_tqdm: bool = False) -> list[float]:
        """The ELBO summed over lm-eval's disjoint rolling windows (every token scored once): a bound."""
        out = []
        for (text,) in [request.args for request in requests]:
            windows = get_rolling_token_windows(self.tok_encode(text), self.prefix_token_id, self.max_length, 1)
            out.append(sum(elbo_loglik(self.model, *make_disjoint_window(w), self.spec) for w in windows))
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), out[-1])
        return out
    def request_for(self, context: str, gen_kwargs: dict) -> Request:
        kwargs = normalize_gen_kwargs(dict(gen_kwargs), self.args.max_gen_toks)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=self.tokenizer.decode([self.eot_token_id]))
        temperature = float(kwargs.get("temperature") or 0.0) if kwargs.get("do_sample") else 0.0
        return Request(prompt=context, mode=self.args.mode, tau_mask=self.args.tau_mask, tau_edit=self.args.tau_edit,
                       max_new_tokens=kwargs["max_gen_toks"], seed=self.args.seed, temperature=temperature,
                       stop=tuple(until))
    def generations(self, requests, disable_tqdm: bool = False) -> list[str]:
        """The requests decoded together through engine.run_batch, up to batch_size rows at a time."""
        args = [request.args for request in requests]
        prepared = [self.engine.prepare(self.request_for(context, gen_kwargs)) for context, gen_kwargs in args]
        completions = self.engine.run_batch(prepared, max_rows=self.args.batch_size)
        self.prefills += sum(done.result.stats.prefill_forwards for done in completions)
        out = [done.text for done in completions]
        for key, text in zip(args, out, strict=True):
            self.cache_hook.add_partial("generate_until", key, text)
        return out

@register_model("hf-counted")
class CountingHFLM(Metered, HFLM):
    """lm-eval's own hf model, unchanged but for counting forwards, generated tokens and seconds per task."""
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.start_meter(self.model)
    def raw(self, kind: str):
        """HFLM's method; each generation's first forward (one row per request) is its prompt's prefill."""
        run = super().raw(kind)
        def generate(part, disable_tqdm: bool = False):
            self.prefills += len(part)
            return run(part, disable_tqdm)
        return generate if kind == "generate_until" else run
