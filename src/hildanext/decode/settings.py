# The edge between params, tokenizer and decoder: a mode (S or Q) resolved into decode settings where explicit
# values win, stop ids looked up by token string, suppressed ids from the tokenizer, prompt encoding (plain text
# or the chat template), and the AR baseline with the same DecodeResult. Entry points: decode_settings,
# stop_token_ids, suppressed_ids, chat_text, encode_prompt, default_model_dir, load_decoder, generate_text, ar_generate_ids;
# generate_lines is the body of `hildanext generate`.
import time
from pathlib import Path
import torch
from transformers import GenerationConfig
from hildanext.config import DecodeParams, Params, ParamsError, RuntimeParams, apply_overrides, as_dict, load_params, validate
from hildanext.decode.decoder import DecodeResult, PassRecord, cut_at_stop, decode_stats, generate_ids
from hildanext.model import ModelFolderError, load_model
from hildanext.decode.remask import Window
MODES = {"S": "S_MODE", "Q": "Q_MODE"}
STOP_TOKENS = ("<|endoftext|>", "<|im_end|>")
MODEL_DIRS = ("models/sft", "models/merged", "models/init")
def decode_settings(params: DecodeParams, mode: str | None = None, **explicit) -> dict:
    """Active params, then the mode's preset, then every explicit value that is not None."""
    settings = {key: value for key, value in as_dict(params).items() if key != "presets"}
    if mode is not None:
        if mode.upper() not in MODES:
            raise ParamsError(f"--mode: {mode!r} is not one of {', '.join(MODES)}")
        settings |= as_dict(getattr(params.presets, MODES[mode.upper()]))
    unknown = set(explicit) - set(settings)
    if unknown:
        raise ParamsError(f"decode: unknown setting {sorted(unknown)}")
    settings |= {key: value for key, value in explicit.items() if value is not None}
    validate({"decode": settings}, "decode settings")
    return settings

def token_id(tokenizer, token: str) -> int | None:
    found = tokenizer.convert_tokens_to_ids(token)
    return None if found is None or found == tokenizer.unk_token_id else found

def stop_token_ids(tokenizer) -> tuple[int, list[int]]:
    """(eos_id, stop_ids): the tokenizer's eos plus <|endoftext|> and <|im_end|> where they exist."""
    found = [i for i in (token_id(tokenizer, t) for t in STOP_TOKENS) if i is not None]
    eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else found[0]
    return eos_id, [i for i in found if i != eos_id]

def suppressed_ids(tokenizer, vocab_rows: int, keep_ids) -> list[int]:
    """Unused embedding rows, special and added tokens (the mask included), except keep_ids (the stop tokens)."""
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    special |= {tokenizer.mask_token_id} if tokenizer.mask_token_id is not None else set()
    return sorted((special | set(range(len(tokenizer), vocab_rows))) - set(keep_ids))

def chat_text(tokenizer, messages: list[dict]) -> str:
    """OpenAI-style messages rendered with the tokenizer's chat template, thinking off, ready for the reply."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)

def encode_prompt(tokenizer, prompt: str, chat: bool = False) -> list[int]:
    if chat:
        prompt = chat_text(tokenizer, [{"role": "user", "content": prompt}])
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]

def default_model_dir(root: Path = Path(".")) -> Path:
    """The latest pipeline output that exists: models/sft, else models/merged, else models/init."""
    for name in MODEL_DIRS:
        if (Path(root) / name / "config.json").exists():
            return Path(root) / name
    raise ModelFolderError(f"no model folder: none of {', '.join(MODEL_DIRS)} exists under {Path(root).resolve()}; pass --model PATH")

def load_decoder(path: Path, runtime: RuntimeParams):
    model, tokenizer = load_model(Path(path), runtime)
    if tokenizer.mask_token_id is None:
        raise ModelFolderError(f"{path}: its tokenizer has no mask token; decode a converted folder (models/init or later)")
    return model, tokenizer

def generate_text(model, tokenizer, prompt: str, settings: dict, chat: bool = False) -> tuple[str, DecodeResult]:
    eos_id, stop_ids = stop_token_ids(tokenizer)
    suppress = suppressed_ids(tokenizer, model.config.vocab_size, [eos_id, *stop_ids])
    result = generate_ids(model, encode_prompt(tokenizer, prompt, chat), mask_id=tokenizer.mask_token_id, eos_id=eos_id, stop_ids=stop_ids, suppress_ids=suppress, **settings)
    return tokenizer.decode(result.ids, skip_special_tokens=True), result

def ar_generate_ids(model, prompt_ids, *, eos_id: int, stop_ids=None, suppress_ids=None, max_new_tokens: int, temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None, seed: int = 0) -> DecodeResult:
    """The AR baseline: Hugging Face generate (greedy when temperature is 0), one record per generated token."""
    stops = list(dict.fromkeys([eos_id, *(stop_ids or ())]))
    sampling = {"do_sample": True, "temperature": temperature, "top_k": top_k or 0, "top_p": top_p or 1.0} if temperature > 0 else {"do_sample": False}
    config = GenerationConfig(max_new_tokens=max_new_tokens, eos_token_id=stops, pad_token_id=eos_id, suppress_tokens=list(suppress_ids or ()) or None, **sampling)
    prompt = torch.as_tensor(prompt_ids, dtype=torch.long).flatten()[None].to(model.device)
    torch.manual_seed(seed)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), generation_config=config)
    seconds = time.perf_counter() - started
    new = out[0, prompt.shape[1]:].tolist()
    ids = cut_at_stop(new, set(stops))
    trace = [PassRecord(0, i, 0, [(i, token)], []) for i, token in enumerate(ids)]
    return DecodeResult(ids, trace, decode_stats(len(new), len(ids), seconds))

def params_or_defaults(path: Path, overrides=()) -> Params:
    """The params file when it exists (a pipeline checkout), else the defaults; --set applies to both."""
    return load_params(path, overrides) if Path(path).exists() else validate(apply_overrides(as_dict(Params()), overrides), "defaults --set")

def piece(tokenizer, token: int) -> str:
    return repr(tokenizer.decode([token]))

def trace_line(record: PassRecord, tokenizer) -> str:
    unmasked = " ".join(f"{i}:{piece(tokenizer, t)}" for i, t in record.unmasked)
    edited = " ".join(f"{i}:{piece(tokenizer, old)}->{piece(tokenizer, new)}" for i, old, new in record.edited)
    phase = "remask " if record.phase == "remask" else ""
    return f"{phase}block {record.block} step {record.step}: {record.masks_left} masks left | unmasked {unmasked or '-'} | edited {edited or '-'}"

def window_line(window: Window, tokenizer) -> str:
    remasked = " ".join(f"{i}:{piece(tokenizer, t)}@{conf:.3f}" for i, t, conf in window.remasked)
    return f"remask window [{window.start}, {window.end}): {len(window.candidates)} candidates | remasked {remasked or '-'}"

def trace_lines(result: DecodeResult, tokenizer) -> list[str]:
    """Decode passes, then one line per remask window, then the remask passes."""
    lines = [trace_line(r, tokenizer) for r in result.trace if r.phase == "decode"]
    if result.remask is not None:
        lines += [window_line(w, tokenizer) for w in result.remask.windows]
    return lines + [trace_line(r, tokenizer) for r in result.trace if r.phase == "remask"]

def summary_line(result: DecodeResult, model_dir: Path, mode: str | None) -> str:
    s, r = result.stats, result.remask
    remasked = f", remasked {r.remasked} ({len(r.changed)} changed)" if r is not None else ""
    return f"{model_dir} mode {mode.upper() if mode else 'params'}: forwards {s.forwards}, tokens {s.tokens}, TPF {s.tpf:.2f}, {s.tokens_per_s:.1f} tokens/s, {s.seconds:.2f} s{remasked}"

def generate_lines(prompt: str, params: Params, model_dir: Path | None = None, mode: str | None = None, chat: bool = False, trace: bool = False, **explicit) -> list[str]:
    """The body of `hildanext generate`: the per-pass log when asked, the text, one summary line."""
    settings = decode_settings(params.decode, mode, **explicit)
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    model, tokenizer = load_decoder(model_dir, params.runtime)
    text, result = generate_text(model, tokenizer, prompt, settings, chat)
    log = trace_lines(result, tokenizer) if trace else []
    return log + [text, summary_line(result, model_dir, mode)]
