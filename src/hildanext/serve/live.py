# The live view: GET /live (the page), GET /live/static/{name} (its JS and CSS, package data) and GET /live/stream
# (server-sent events from one row of the worker's batch: `start`, one `pass` per decoder event with the committed
# and edited tokens as text, the first committed stop, masks left and the running TPF (tokens_per_forward over the
# positions kept so far), remask passes marked by phase, then `done` with the answer's ids and stats, or `error`).
# Entry points: router, LiveTask, LiveFormatter (decoder events -> SSE-ready dicts), sse(event, data), page_file.
import json
from importlib import resources
from typing import Annotated
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from hildanext.decode.decoder import tokens_per_forward
from hildanext.decode.settings import DecodeSettings
from hildanext.serve.common import ServeError, admit, next_event, state
from hildanext.serve.schemas import LiveQuery, check_cap
from hildanext.serve.tasks import GenTask, prepare_request
router = APIRouter(prefix="/live")
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
PAGE_FILES = {"index.html": "text/html", "live.js": "text/javascript", "live.css": "text/css"}
class LiveFormatter:
    """Tracks each position's committed token so a pass event carries the first stop and the running TPF."""
    def __init__(self, tokenizer, max_new_tokens: int, stops=()):
        self.tokenizer, self.max_new_tokens, self.stops, self.tokens = tokenizer, max_new_tokens, set(stops), {}
    def piece(self, token: int) -> str:
        return self.tokenizer.decode([token])
    def start(self, prompt_tokens: int, s: DecodeSettings) -> dict:
        knobs = {"tau_mask": s.tau_mask, "tau_edit": s.tau_edit, "block_size": s.block_size}
        return {"prompt_tokens": prompt_tokens, "max_new_tokens": self.max_new_tokens, **knobs,
                "remask_pass": s.remask is not None}
    def stop(self) -> int | None:
        """The first answer position holding a committed stop token (None before one is committed)."""
        return min((i for i, t in self.tokens.items() if t in self.stops), default=None)
    def running(self, event: dict) -> dict:
        """The first stop, the tokens kept so far (decided positions up to it) and the TPF of the final stats."""
        stop, refreshes = self.stop(), event.get("refreshes", 0)
        kept = sum(stop is None or i <= stop for i in self.tokens)
        return {"stop": stop, "kept": kept, "forwards": event["forwards"], "refreshes": refreshes,
                "tpf": tokens_per_forward(kept, event["forwards"] + refreshes)}
    def on_event(self, event: dict) -> dict | None:
        if event["type"] == "remask":
            return self.on_remask(event)
        if event["type"] != "pass":
            return None
        record, visible = event["record"], lambda i: 0 <= i < self.max_new_tokens
        commits = [*record.unmasked, *((i, new) for i, _, new in record.edited)]
        self.tokens |= {i: t for i, t in commits if visible(i)}
        unmasked = [{"i": i, "text": self.piece(t)} for i, t in record.unmasked if visible(i)]
        edited = [{"i": i, "old": self.piece(a), "new": self.piece(b)} for i, a, b in record.edited if visible(i)]
        return {"phase": record.phase, "block": record.block, "step": record.step, "unmasked": unmasked,
                "edited": edited, "masks_left": record.masks_left} | self.running(event)
    def on_remask(self, event: dict) -> dict:
        """The scoring forward of the remask pass: the positions it masks again (block and step are None)."""
        picks = [pick for w in event["windows"] for pick in w.remasked]
        for i, _, _ in picks:
            self.tokens.pop(i, None)
        remasked = [{"i": i, "text": self.piece(t), "conf": conf} for i, t, conf in picks]
        return {"phase": "remask", "block": None, "step": None, "unmasked": [], "edited": [], "remasked": remasked,
                "masks_left": len(remasked)} | self.running(event)
    def done(self, completion) -> dict:
        s = completion.result.stats
        stats = {"forwards": s.forwards, "refreshes": s.cache_forwards, "tokens": s.tokens, "tpf": s.tpf,
                 "seconds": s.seconds, "tokens_per_s": s.tokens_per_s}
        return {"text": completion.text, "ids": completion.ids, "pieces": [self.piece(t) for t in completion.ids],
                "finish_reason": completion.finish_reason, "stats": stats}

def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"

def page_file(name: str) -> tuple[bytes, str]:
    if name not in PAGE_FILES:
        raise KeyError(name)
    return resources.files("hildanext").joinpath("assets/live", name).read_bytes(), PAGE_FILES[name]

class LiveTask(GenTask):
    """A completion (one row) whose observer emits formatted pass events (token text is decoded in the worker)."""
    def join(self, engine, n: int) -> list[tuple]:
        prepared = prepare_request(engine, self.request, None, "prompt", self.context)
        self.prepared, self.joined = [prepared], 1
        self.live = LiveFormatter(engine.tokenizer, prepared.settings.max_new_tokens, engine.special.stops)
        self.emit({"type": "start", "data": self.live.start(len(prepared.prompt_ids), prepared.settings)})
        def observe(event: dict) -> None:
            self.check()
            if (data := self.live.on_event(event)) is not None:
                self.emit({"type": "pass", "data": data})
        return [(0, prepared, observe)]
    def end(self, index: int, completion) -> None:
        self.done = {"type": "done", "completion": completion, "settings": self.prepared[0].settings,
                     "data": self.live.done(completion)}

@router.get("")
async def page():
    body, media = page_file("index.html")
    return Response(body, media_type=media)

@router.get("/static/{name}")
async def static(name: str):
    try:
        body, media = page_file(name)
    except KeyError:
        raise ServeError(404, f"/live/static/{name}: no such file") from None
    return Response(body, media_type=media)

async def live_events(task: LiveTask, deadline: float):
    try:
        while (event := await next_event(task, deadline))["type"] in ("start", "pass"):
            yield sse(event["type"], event["data"])
        yield sse("error", {"detail": event["message"]}) if event["type"] == "error" else sse("done", event["data"])
    except ServeError as e:
        yield sse("error", {"detail": e.message})
    finally:
        task.cancel("stream closed")

@router.get("/stream")
async def stream(request: Request, query: Annotated[LiveQuery, Query()]):
    serve = state(request)
    limits = serve.params.serve
    check_cap(query.max_new_tokens, "max_new_tokens", limits.max_new_tokens_limit, "serve.max_new_tokens_limit")
    task = LiveTask(query.engine_request(), context=limits.max_context)
    deadline = admit(serve, task)
    return StreamingResponse(live_events(task, deadline), media_type="text/event-stream", headers=HEADERS)
