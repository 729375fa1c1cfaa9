# The live view (issue 10): GET /live (the page), GET /live/static/{name} (its JS and CSS, package data) and
# GET /live/stream (server-sent events from the one worker: `start`, one `pass` per forward with the
# unmasked and edited tokens, masks left and the running TPF, remask passes marked by phase, then `done`
# with the answer and stats, or `error`). Entry points: router, LiveTask.
from typing import Literal
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from hildanext.decode.engines import Request as EngineRequest
from hildanext.serve.live_view import LiveFormatter, page_file, sse
from hildanext.serve.common import ServeError, admit, next_event, state
from hildanext.serve.schemas import check_cap
from hildanext.serve.tasks import GenTask, prepare_request
router = APIRouter(prefix="/live")
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
class LiveTask(GenTask):
    """A completion whose observer emits formatted pass events (token text is decoded in the worker)."""
    def step(self, engine) -> bool:
        request, n, settings = prepare_request(engine, self.request, None, "prompt", self.context)
        live = LiveFormatter(engine.tokenizer, settings["max_new_tokens"])
        self.emit({"type": "start", "data": live.start(n, settings)})
        def observe(event: dict) -> None:
            self.check()
            if (data := live.on_event(event)) is not None:
                self.emit({"type": "pass", "data": data})
        completion = engine.complete(request, observe)
        self.done = {"type": "done", "completion": completion, "settings": settings, "data": live.done(completion)}
        return True

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
async def stream(request: Request, prompt: str = Query(min_length=1), mode: Literal["S", "Q"] = "S", tau_mask: float | None = Query(None, ge=0, le=1), tau_edit: float | None = Query(None, ge=0, le=1), max_new_tokens: int = Query(64, ge=1), seed: int = Query(0, ge=0), temperature: float | None = Query(None, ge=0), chat: bool = False, remask: bool | None = None):
    serve = state(request)
    check_cap(max_new_tokens, "max_new_tokens", serve.params.serve.max_new_tokens_limit, "serve.max_new_tokens_limit")
    task = LiveTask(EngineRequest(prompt, mode, tau_mask, tau_edit, max_new_tokens, seed, temperature, chat=chat, remask=remask), context=serve.params.serve.max_context)
    deadline = admit(serve, task)
    return StreamingResponse(live_events(task, deadline), media_type="text/event-stream", headers=HEADERS)
