# Generation work for the serve worker: prepare_request renders chat messages with the template, then encodes
# the prompt and resolves its settings once (Engine.prepare) and checks them against the context; GenTask runs
# Engine.run on that and reports to the waiting handler through an asyncio queue (start, delta, done or error
# events); TextStream turns the decoder's block events into append-only text deltas. Entry points: GenTask,
# TextStream, prepare_request, held_back.
import asyncio, dataclasses, logging
from hildanext.decode.engines import Prepared, Request, cut_at_stop_strings
from hildanext.model import chat_text
from hildanext.serve.worker import Problem, Task
log = logging.getLogger("hildanext.serve")
def held_back(text: str, stops) -> int:
    """How many trailing characters could still be the start of a stop string."""
    return max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)

class TextStream:
    """Deltas of the decoded text; a trailing U+FFFD (a split UTF-8 byte run) and a partial stop string wait."""
    def __init__(self, tokenizer, stops):
        self.tokenizer, self.stops, self.sent = tokenizer, tuple(s for s in stops if s), ""
    def update(self, ids) -> str:
        text, cut = cut_at_stop_strings(self.tokenizer.decode(ids, skip_special_tokens=True), self.stops)
        if not cut:
            text = text.rstrip("\ufffd")
            text = text[: len(text) - held_back(text, self.stops)]
        return self.push(text)
    def push(self, text: str) -> str:
        if not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent) :], text
        return delta
    def finish(self, text: str) -> str:
        if not text.startswith(self.sent):
            log.warning("streamed text %r is not a prefix of the final text %r", self.sent, text)
        return self.push(text)

def prepare_request(engine, request: Request, messages, field: str, context: int) -> Prepared:
    """The request with its chat rendered, encoded and resolved once by the engine; 422 past the context."""
    if messages is not None:
        try:
            request = dataclasses.replace(request, prompt=chat_text(engine.tokenizer, messages))
        except Exception as e:
            raise Problem(422, f"{field}: the chat template failed ({e.__class__.__name__}: {e})", field) from None
    prepared = engine.prepare(request)
    n, new = len(prepared.prompt_ids), prepared.settings.max_new_tokens
    limit = context or engine.model.config.max_position_embeddings
    if n + new > limit:
        raise Problem(422, f"{field}: {n} prompt tokens + {new} new tokens exceed the context of {limit} tokens", field)
    return prepared

class GenTask(Task):
    """One completion for a waiting handler; events: start, delta (when streaming), done or error."""
    def __init__(self, request: Request, stream: bool = False, messages=None, field: str = "prompt",
                 context: int = 0):
        super().__init__()
        self.request, self.stream, self.messages, self.field, self.context = request, stream, messages, field, context
        self.loop, self.events, self.done = asyncio.get_running_loop(), asyncio.Queue(), None
    def emit(self, event: dict) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:
            log.debug("event loop closed; dropped %s", event["type"])
    def step(self, engine) -> bool:
        prepared = prepare_request(engine, self.request, self.messages, self.field, self.context)
        self.emit({"type": "start", "prompt_tokens": len(prepared.prompt_ids)})
        text = TextStream(engine.tokenizer, prepared.request.stop) if self.stream else None
        completion = engine.run(prepared, self.observer(text))
        if text is not None and (delta := text.finish(completion.text)):
            self.emit({"type": "delta", "text": delta})
        self.done = {"type": "done", "completion": completion, "settings": prepared.settings}
        return True
    def observer(self, text):
        def observe(event: dict) -> None:
            self.check()
            if text is not None and event["type"] == "block" and (delta := text.update(event["ids"])):
                self.emit({"type": "delta", "text": delta})
        return observe
    def close(self) -> None:
        if self.error is not None:
            error = self.error
            self.emit({"type": "error", "status": error.status, "message": error.message, "param": error.param})
        else:
            self.emit(self.done)
