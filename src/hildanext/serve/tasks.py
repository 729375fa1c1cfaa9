# Work for the serve worker: prepare_request renders chat messages with the template, encodes the prompt (or
# takes token ids as given) and resolves its settings once, checked against the context; GenTask decodes each
# prompt as one row of the worker's session (a completions list is several rows) and reports to the waiting
# handler through an asyncio queue (start, delta, done or error events); CallTask runs one tokenizer call between
# steps; TextStream turns block events into append-only text deltas.
# Entry points: GenTask, CallTask, TextStream, prepare_request, held_back.
import asyncio, dataclasses, logging
from collections.abc import Callable
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

def known_ids(engine, ids: list[int], field: str) -> list[int]:
    """The token ids when every one is inside the vocabulary; 422 naming the field otherwise."""
    vocab = min(len(engine.tokenizer), engine.model.config.vocab_size)
    if (bad := next((i for i in ids if i >= vocab), None)) is not None:
        raise Problem(422, f"{field}: token id {bad} is outside the vocabulary of {vocab} tokens", field)
    return list(ids)

def prepare_request(engine, request: Request, messages, field: str, context: int, ids=None) -> Prepared:
    """The request with its chat rendered, encoded (or its token ids) and resolved once; 422 past the context."""
    if messages is not None:
        try:
            request = dataclasses.replace(request, prompt=chat_text(engine.tokenizer, messages))
        except Exception as e:
            raise Problem(422, f"{field}: the chat template failed ({e.__class__.__name__}: {e})", field) from None
    if ids is None:
        prepared = engine.prepare(request)
    else:
        prepared = Prepared(request, known_ids(engine, ids, field), engine.resolve(request))
    n, new = len(prepared.prompt_ids), prepared.settings.max_new_tokens
    limit = context or engine.model.config.max_position_embeddings
    if n + new > limit:
        raise Problem(422, f"{field}: {n} prompt tokens + {new} new tokens exceed the context of {limit} tokens", field)
    return prepared

class Reporter(Task):
    """A task that reports to a handler on the event loop: close() emits its error or its done event."""
    def __init__(self):
        super().__init__()
        self.loop, self.events, self.done = asyncio.get_running_loop(), asyncio.Queue(), None
    def emit(self, event: dict) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:
            log.debug("event loop closed; dropped %s", event["type"])
    def close(self) -> None:
        if self.error is not None:
            error = self.error
            self.emit({"type": "error", "status": error.status, "message": error.message, "param": error.param})
        else:
            self.emit(self.done)

class CallTask(Reporter):
    """fn(engine) in the worker (which owns every tokenizer call), between session steps; done carries its value."""
    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn
    def step(self, engine) -> None:
        self.done = {"type": "done", "value": self.fn(engine)}

class GenTask(Reporter):
    """Completions, one session row per prompt (prompts: texts or token-id lists in place of request.prompt)."""
    batched = True
    def __init__(self, request: Request, stream: bool = False, messages=None, field: str = "prompt",
                 context: int = 0, prompts: list | None = None):
        super().__init__()
        self.request, self.stream, self.messages, self.field, self.context = request, stream, messages, field, context
        self.prompts, self.prepared, self.completions, self.texts = prompts or [request.prompt], [], {}, {}
    def size(self) -> int:
        return len(self.prompts)
    def prepare(self, engine, index: int, prompt) -> Prepared:
        field = self.field if len(self.prompts) == 1 else f"{self.field}.{index}"
        text = prompt if isinstance(prompt, str) else ""
        request, ids = dataclasses.replace(self.request, prompt=text), None if isinstance(prompt, str) else prompt
        return prepare_request(engine, request, self.messages, field, self.context, ids)
    def join(self, engine, n: int) -> list[tuple]:
        """Every prompt is prepared (and start emitted) when the first row joins."""
        if not self.prepared:
            self.prepared = [self.prepare(engine, i, p) for i, p in enumerate(self.prompts)]
            self.emit({"type": "start", "prompt_tokens": len(self.prepared[0].prompt_ids)})
        rows = [(i, self.prepared[i], self.observer(engine, i)) for i in range(self.joined, self.joined + n)]
        self.joined += n
        return rows
    def end(self, index: int, completion) -> None:
        if (text := self.texts.pop(index, None)) is not None and (delta := text.finish(completion.text)):
            self.emit({"type": "delta", "text": delta})
        self.completions[index] = completion
        if len(self.completions) == len(self.prepared):
            ordered = [self.completions[i] for i in range(len(self.prepared))]
            self.done = {"type": "done", "completion": ordered[0], "completions": ordered,
                         "settings": self.prepared[-1].settings}
    def observer(self, engine, index: int):
        text = TextStream(engine.tokenizer, self.prepared[index].request.stop) if self.stream else None
        self.texts[index] = text
        def observe(event: dict) -> None:
            self.check()
            if text is not None and event["type"] == "block" and (delta := text.update(event["ids"])):
                self.emit({"type": "delta", "text": delta})
        return observe
