# The live view's event stream: decoder observer events turned into SSE-ready dicts (start, one `pass` per
# forward with the unmasked and edited positions as token text, masks left, the running TPF and the phase:
# decode, or remask for the remask pass's scoring forward (its remasked positions) and re-decode passes), then
# `done` with the answer and stats, plus the page's package-data files. Entry points: LiveFormatter,
# sse(event, data), page_file(name).
import json
from importlib import resources
PAGE_FILES = {"index.html": "text/html", "live.js": "text/javascript", "live.css": "text/css"}
class LiveFormatter:
    """Tracks decided positions so each pass event carries the running TPF (decided tokens per forward)."""
    def __init__(self, tokenizer, max_new_tokens: int):
        self.tokenizer, self.max_new_tokens, self.decided = tokenizer, max_new_tokens, set()
    def piece(self, token: int) -> str:
        return self.tokenizer.decode([token])
    def start(self, prompt_tokens: int, settings: dict) -> dict:
        return {"prompt_tokens": prompt_tokens, "max_new_tokens": self.max_new_tokens} | {k: settings[k] for k in ("tau_mask", "tau_edit", "block_size", "remask_pass") if k in settings}
    def on_event(self, event: dict) -> dict | None:
        if event["type"] == "remask":
            return self.on_remask(event)
        if event["type"] != "pass":
            return None
        record, visible = event["record"], lambda i: 0 <= i < self.max_new_tokens
        self.decided |= {i for i, _ in record.unmasked if visible(i)}
        unmasked = [{"i": i, "text": self.piece(t)} for i, t in record.unmasked if visible(i)]
        edited = [{"i": i, "old": self.piece(old), "new": self.piece(new)} for i, old, new in record.edited if visible(i)]
        tpf = len(self.decided) / max(event["forwards"], 1)
        return {"phase": record.phase, "block": record.block, "step": record.step, "unmasked": unmasked, "edited": edited, "masks_left": record.masks_left, "forwards": event["forwards"], "tpf": tpf}
    def on_remask(self, event: dict) -> dict:
        """The scoring forward of the remask pass: the positions it masks again (block and step are None)."""
        remasked = [{"i": i, "text": self.piece(t), "conf": conf} for w in event["windows"] for i, t, conf in w.remasked]
        tpf = len(self.decided) / max(event["forwards"], 1)
        return {"phase": "remask", "block": None, "step": None, "unmasked": [], "edited": [], "remasked": remasked, "masks_left": len(remasked), "forwards": event["forwards"], "tpf": tpf}
    def done(self, completion) -> dict:
        stats = completion.result.stats
        return {"text": completion.text, "finish_reason": completion.finish_reason, "stats": {"forwards": stats.forwards, "tokens": stats.tokens, "tpf": stats.tpf, "seconds": stats.seconds, "tokens_per_s": stats.tokens_per_s}}

def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"

def page_file(name: str) -> tuple[bytes, str]:
    if name not in PAGE_FILES:
        raise KeyError(name)
    return resources.files("hildanext").joinpath("assets/live", name).read_bytes(), PAGE_FILES[name]
