# The OpenAI-compatible API: GET /v1/models, POST /v1/completions (a text, token ids or a list of either, one
# choice per prompt: what lm-eval's local-completions sends) and POST /v1/chat/completions (chat template applied
# server-side, thinking off), honouring max_tokens, stop, seed, temperature and the decoder knobs, with usage and
# finish_reason; logprobs and echo get 400 (no autoregressive logprobs); stream: true answers server-sent events,
# one append-only delta per decoded block, ending with `data: [DONE]`. Entry points: router, Shape, sse_events.
import json, time, uuid
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from hildanext.decode.engines import Completion
from hildanext.serve.common import ServeError, admit, error_body, next_event, state, wait_event
from hildanext.serve.schemas import ChatBody, CompletionBody, OpenAIBody, check_cap, engine_request
from hildanext.serve.tasks import GenTask
router = APIRouter(prefix="/v1")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
NO_LOGPROBS = ("a diffusion model has no per-token autoregressive logprobs, so this server returns none "
               "(lm-eval's loglikelihood tasks ask for them with echo and logprobs); score loglikelihood, "
               "multiple_choice and perplexity tasks with `hildanext lm-eval --model hildanext` (its block-diffusion "
               "ELBO) and send only generate_until tasks here")
def usage(completions: list[Completion]) -> dict:
    prompt, new = sum(c.prompt_tokens for c in completions), sum(len(c.ids) for c in completions)
    return {"prompt_tokens": prompt, "completion_tokens": new, "total_tokens": prompt + new}

def refuse_logprobs(body: OpenAIBody) -> None:
    """400 for logprobs (and echo, lm-eval's way of asking for the prompt's logprobs), naming the reason."""
    for field in ("logprobs", "top_logprobs", "echo"):
        if (value := getattr(body, field, None)) is not None and value is not False:
            raise ServeError(400, f"{field}: not supported: {NO_LOGPROBS}", field)

def sse(data) -> str:
    return f"data: {json.dumps(data)}\n\n"

class Shape:
    """Response and chunk bodies of one answer: a text completion or a chat completion."""
    def __init__(self, chat: bool, model: str):
        self.chat, self.model, self.created = chat, model, int(time.time())
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    def head(self, chunk: bool) -> dict:
        kind = ("chat.completion.chunk" if chunk else "chat.completion") if self.chat else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}
    def choice(self, text: str, finish: str | None, chunk: bool, role: bool = False, index: int = 0) -> dict:
        if not self.chat:
            return {"index": index, "text": text, "finish_reason": finish, "logprobs": None}
        if not chunk:
            message = {"role": "assistant", "content": text}
            return {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
        delta = ({"role": "assistant"} if role else {}) | ({"content": text} if text or role else {})
        return {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    def response(self, completions: list[Completion]) -> dict:
        choices = [self.choice(c.text, c.finish_reason, False, index=i) for i, c in enumerate(completions)]
        return self.head(False) | {"choices": choices, "usage": usage(completions)}
    def chunk(self, text: str, finish: str | None = None, role: bool = False) -> dict:
        return self.head(True) | {"choices": [self.choice(text, finish, True, role)]}
    def opening(self) -> list[dict]:
        return [self.chunk("", role=True)] if self.chat else []
    def usage_chunk(self, c: Completion) -> dict:
        return self.head(True) | {"choices": [], "usage": usage([c])}

async def sse_events(task: GenTask, deadline: float, shape: Shape, include_usage: bool):
    """Chunks as blocks finish, the finish_reason chunk, the usage chunk when asked, then [DONE]."""
    try:
        for chunk in shape.opening():
            yield sse(chunk)
        while (event := await next_event(task, deadline))["type"] == "delta":
            yield sse(shape.chunk(event["text"]))
        if event["type"] == "error":
            yield sse(error_body(event["status"], event["message"], event.get("param")))
        else:
            yield sse(shape.chunk("", event["completion"].finish_reason))
            if include_usage:
                yield sse(shape.usage_chunk(event["completion"]))
    except ServeError as e:
        yield sse(error_body(e.status, e.message, e.param))
    finally:
        task.cancel("stream closed")
    yield "data: [DONE]\n\n"

def check_prompts(serve, prompts: list, stream: bool) -> None:
    check_cap(len(prompts), "prompt", serve.params.serve.max_job_prompts, "serve.max_job_prompts")
    if stream and len(prompts) > 1:
        raise ServeError(422, f"prompt: stream: true takes one prompt, not {len(prompts)}", "prompt")

async def answer(request: Request, body: OpenAIBody, prompts: list | None, messages, budget: tuple[int | None, str]):
    serve = state(request)
    refuse_logprobs(body)
    check_cap(budget[0], budget[1], serve.params.serve.max_new_tokens_limit, "serve.max_new_tokens_limit")
    chat = messages is not None
    if not chat:
        check_prompts(serve, prompts, body.stream)
    ask = engine_request(body, "", budget[0], body.stop)
    task = GenTask(ask, body.stream, messages, "messages" if chat else "prompt", serve.params.serve.max_context,
                   prompts)
    deadline, shape = admit(serve, task), Shape(chat, serve.model)
    if not body.stream:
        return shape.response((await wait_event(task, deadline, request, ("done",)))["completions"])
    await wait_event(task, deadline, request, ("start",))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = sse_events(task, deadline, shape, include_usage)
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)

@router.get("/models")
async def models(request: Request):
    serve = state(request)
    model = {"id": serve.model, "object": "model", "created": serve.created, "owned_by": "hildanext"}
    return {"object": "list", "data": [model]}

@router.post("/completions")
async def completions(body: CompletionBody, request: Request):
    return await answer(request, body, body.prompts(), None, (body.max_tokens, "max_tokens"))

@router.post("/chat/completions")
async def chat_completions(body: ChatBody, request: Request):
    field = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
    return await answer(request, body, None, [m.plain() for m in body.messages], (body.budget(), field))
