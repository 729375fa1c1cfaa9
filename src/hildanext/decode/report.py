# What `hildanext generate` prints for one completion: with --trace one line per decoder pass (block, step,
# masks left, unmasked and edited tokens) and per remask window, then the text and one summary line (forwards,
# tokens, TPF, tokens/s, remasked). Entry points: generate_lines(engine, request, trace), trace_lines, summary_line.
from pathlib import Path
from hildanext.decode.decoder import DecodeResult, PassRecord
from hildanext.decode.engines import Engine, Request
from hildanext.decode.remask import Window
def piece(tokenizer, token: int) -> str:
    return repr(tokenizer.decode([token]))

def trace_line(record: PassRecord, tokenizer) -> str:
    unmasked = " ".join(f"{i}:{piece(tokenizer, t)}" for i, t in record.unmasked)
    edited = " ".join(f"{i}:{piece(tokenizer, old)}->{piece(tokenizer, new)}" for i, old, new in record.edited)
    phase = "remask " if record.phase == "remask" else ""
    where = f"{phase}block {record.block} step {record.step}: {record.masks_left} masks left"
    return f"{where} | unmasked {unmasked or '-'} | edited {edited or '-'}"

def window_line(window: Window, tokenizer) -> str:
    remasked = " ".join(f"{i}:{piece(tokenizer, t)}@{conf:.3f}" for i, t, conf in window.remasked)
    where = f"remask window [{window.start}, {window.end}): {len(window.candidates)} candidates"
    return f"{where} | remasked {remasked or '-'}"

def trace_lines(result: DecodeResult, tokenizer) -> list[str]:
    """Decode passes, then one line per remask window, then the remask passes."""
    lines = [trace_line(r, tokenizer) for r in result.trace if r.phase == "decode"]
    if result.remask is not None:
        lines += [window_line(w, tokenizer) for w in result.remask.windows]
    return lines + [trace_line(r, tokenizer) for r in result.trace if r.phase == "remask"]

def summary_line(result: DecodeResult, model_dir: Path | None, mode: str | None) -> str:
    s, r = result.stats, result.remask
    remasked = f", remasked {r.remasked} ({len(r.changed)} changed)" if r is not None else ""
    counts = f"forwards {s.forwards}, tokens {s.tokens}, TPF {s.tpf:.2f}, {s.tokens_per_s:.1f} tokens/s"
    return f"{model_dir} mode {mode.upper() if mode else 'params'}: {counts}, {s.seconds:.2f} s{remasked}"

def generate_lines(engine: Engine, request: Request, trace: bool = False) -> list[str]:
    """The per-pass log when asked, the text, one summary line."""
    completion = engine.complete(request)
    log = trace_lines(completion.result, engine.tokenizer) if trace else []
    return log + [completion.text, summary_line(completion.result, engine.model_dir, request.mode)]
