# The live view's event stream: decoder observer events turned into SSE-ready dicts (start, one `pass` per
# decode pass with the unmasked and edited positions as token text, masks left and the running TPF, then
# `done` with the answer and stats), plus the page's package-data files. Entry points: LiveFormatter,
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
        return {"prompt_tokens": prompt_tokens, "max_new_tokens": self.max_new_tokens} | {k: settings[k] for k in ("tau_mask", "tau_edit", "block_size") if k in settings}
    def on_event(self, event: dict) -> dict | None:
        if event["type"] != "pass":
            return None
        record, visible = event["record"], lambda i: 0 <= i < self.max_new_tokens
        self.decided |= {i for i, _ in record.unmasked if visible(i)}
        unmasked = [{"i": i, "text": self.piece(t)} for i, t in record.unmasked if visible(i)]
        edited = [{"i": i, "old": self.piece(old), "new": self.piece(new)} for i, old, new in record.edited if visible(i)]
        tpf = len(self.decided) / max(event["forwards"], 1)
        return {"block": record.block, "step": record.step, "unmasked": unmasked, "edited": edited, "masks_left": record.masks_left, "forwards": event["forwards"], "tpf": tpf}
    def done(self, completion) -> dict:
        stats = completion.result.stats
        return {"text": completion.text, "finish_reason": completion.finish_reason, "stats": {"forwards": stats.forwards, "tokens": stats.tokens, "tpf": stats.tpf, "seconds": stats.seconds, "tokens_per_s": stats.tokens_per_s}}

def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"

def page_file(name: str) -> tuple[bytes, str]:
    if name not in PAGE_FILES:
        raise KeyError(name)
    return resources.files("hildanext").joinpath("assets/live", name).read_bytes(), PAGE_FILES[name]
