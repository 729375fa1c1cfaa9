# HTTP plumbing shared by the serve routers: ServeState (what the lifespan hook loads), ServeError and the
# OpenAI-style error body {"error": {message, type, param, code}} for every 4xx/5xx (validation included),
# admission (429 with Retry-After when the queue is full) and waiting for worker events under the request
# deadline, cancelling the task when the client goes away. Entry points: ServeState, ServeError,
# install_error_handlers, error_body, state, admit, next_event, wait_event.
import asyncio, time
from dataclasses import dataclass
from pathlib import Path
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from hildanext.config import Params
from hildanext.serve.worker import QueueFull, Task, Worker
POLL_S = 0.2
ERROR_TYPES = {404: "not_found_error", 422: "invalid_request_error", 429: "rate_limit_error", 499: "cancelled",
               504: "timeout"}
@dataclass
class ServeState:
    params: Params
    engine: object
    model: str
    model_dir: Path | None
    worker: Worker
    jobs: object
    created: int

class ServeError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, headers: dict | None = None,
                 extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.headers, self.extra = status, message, param, headers, extra or {}

def state(request: Request) -> ServeState:
    return request.app.state.serve

def error_body(status: int, message: str, param=None) -> dict:
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}

def error_response(status: int, message: str, param=None, headers=None, extra=None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param) | (extra or {}), status_code=status, headers=headers)

def describe(errors) -> tuple[str, str | None]:
    """'field: message; ...' and the first field, with FastAPI's leading 'body' dropped."""
    fields = [".".join(str(p) for p in e["loc"] if p != "body") or "body" for e in errors]
    return "; ".join(f"{f}: {e['msg']}" for f, e in zip(fields, errors, strict=True)), (fields[0] if fields else None)

def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        message, param = describe(exc.errors())
        detail = [{"type": e["type"], "loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        return error_response(422, message, param, extra={"detail": detail})
    @app.exception_handler(ServeError)
    async def refused(request: Request, exc: ServeError):
        return error_response(exc.status, exc.message, exc.param, exc.headers, exc.extra)
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

def admit(serve: ServeState, task: Task) -> float:
    """Queue the task (429 with Retry-After when every slot is taken); returns its deadline."""
    try:
        serve.worker.submit(task)
    except QueueFull as e:
        pending, size = e.args[0], serve.worker.size
        message = f"queue full: {pending} of {size} slots waiting or running (serve.queue_size); retry later"
        headers = {"Retry-After": str(serve.params.serve.retry_after_s)}
        raise ServeError(429, message, headers=headers, extra={"queue": {"pending": pending, "size": size}}) from None
    return time.monotonic() + serve.params.serve.request_timeout_s

async def next_event(task, deadline: float, request: Request | None = None) -> dict:
    """The task's next event; past the deadline, or with the client gone (when polled), the task is cancelled."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            task.cancel("timed out")
            raise ServeError(504, "the request timed out (serve.request_timeout_s)")
        try:
            return await asyncio.wait_for(task.events.get(), min(remaining, POLL_S))
        except TimeoutError:
            if request is not None and await request.is_disconnected():
                task.cancel("client disconnected")
                raise ServeError(499, "client disconnected") from None

async def wait_event(task, deadline: float, request: Request | None, kinds: tuple[str, ...]) -> dict:
    """The first event of one of kinds; an error event raises ServeError; leaving early cancels the task."""
    try:
        while True:
            event = await next_event(task, deadline, request)
            if event["type"] == "error":
                raise ServeError(event["status"], event["message"], event.get("param"))
            if event["type"] in kinds:
                return event
    except BaseException:
        task.cancel("abandoned")
        raise
