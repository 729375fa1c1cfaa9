# Pydantic request bodies for the serve endpoints (extra fields forbidden; the decoder knobs mode, tau_mask,
# tau_edit, remask are the documented extras on the OpenAI requests; a completions prompt is a text, token ids or
# a list of either), the dynamic caps from the serve params (422 naming the field), and the mapping onto
# hildanext.decode.engines.Request (unset knobs: the decode params). Entry points: GenerateBody, CompletionBody,
# ChatBody, JobBody, TokenizeBody, DetokenizeBody, LiveQuery, check_cap, engine_request, stop_strings.
from typing import Annotated, Literal
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from hildanext.decode.engines import Request
Tau = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=1)]
Temperature = Annotated[float, Field(ge=0, le=2)]
Stops = str | Annotated[list[str], Field(max_length=16)] | None
class Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["S", "Q"] | None = None
    tau_mask: Tau | None = None
    tau_edit: Tau | None = None
    seed: Annotated[int, Field(ge=0)] | None = None
    temperature: Temperature | None = None
    remask: bool | None = None

class GenerateBody(Knobs):
    prompt: str
    max_new_tokens: Count | None = None
    chat: bool = False
    trace: bool = False
    stop: Stops = None

class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False

class OpenAIBody(Knobs):
    model: str | None = None
    max_tokens: Count | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    n: Literal[1] = 1
    stop: Stops = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    @field_validator("top_p")
    @classmethod
    def no_nucleus(cls, value):
        if value is not None and value != 1:
            raise ValueError("only top_p 1 is supported (the decoder's top_p lives in decode.top_p)")
        return value

def token_ids(value) -> bool:
    return isinstance(value, list) and bool(value) and all(type(t) is int and t >= 0 for t in value)

class CompletionBody(OpenAIBody):
    prompt: str | list
    echo: bool = False
    logprobs: Annotated[int, Field(ge=0)] | None = None
    @field_validator("prompt")
    @classmethod
    def text_or_ids(cls, value):
        if isinstance(value, str) or token_ids(value) or (value and all(isinstance(v, str) for v in value)):
            return value
        if value and all(token_ids(v) for v in value):
            return value
        raise ValueError("a prompt is a string, a list of token ids (ints >= 0), or a non-empty list of either")
    def prompts(self) -> list:
        """Each prompt: a text or a list of token ids."""
        single = isinstance(self.prompt, str) or isinstance(self.prompt[0], int)
        return [self.prompt] if single else list(self.prompt)

class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str | list[dict]
    name: str | None = None
    def plain(self) -> dict:
        if isinstance(self.content, str):
            return {"role": self.role, "content": self.content}
        parts = [p.get("text", "") for p in self.content if p.get("type") == "text"]
        return {"role": self.role, "content": "".join(parts)}

class ChatBody(OpenAIBody):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: Count | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0)] | None = None
    def budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

class JobBody(Knobs):
    kind: Literal["batch", "benchmark"] = "batch"
    prompts: Annotated[list[str], Field(min_length=1)] | None = None
    max_new_tokens: Count | None = None
    chat: bool = False
    @model_validator(mode="after")
    def prompts_match_kind(self):
        if self.kind == "batch" and self.prompts is None:
            raise ValueError("a batch job needs prompts")
        if self.kind == "benchmark" and self.prompts is not None:
            raise ValueError("a benchmark job runs the fixed prompt set; leave prompts out")
        return self

class TokenizeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    prompt: str
    add_special_tokens: bool = False

class DetokenizeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    tokens: list[Annotated[int, Field(ge=0)]]

class LiveQuery(BaseModel):
    """The query of GET /live/stream."""
    prompt: str = Field(min_length=1)
    mode: Literal["S", "Q"] | None = None
    tau_mask: Tau | None = None
    tau_edit: Tau | None = None
    max_new_tokens: Count = 64
    seed: Annotated[int, Field(ge=0)] = 0
    temperature: Annotated[float, Field(ge=0)] | None = None
    chat: bool = False
    remask: bool | None = None
    def engine_request(self) -> Request:
        return Request(prompt=self.prompt, mode=self.mode, tau_mask=self.tau_mask, tau_edit=self.tau_edit,
                       max_new_tokens=self.max_new_tokens, seed=self.seed, temperature=self.temperature, chat=self.chat,
                       remask=self.remask)

def check_cap(value: int | None, field: str, cap: int, key: str) -> None:
    if value is not None and value > cap:
        message = f"Input should be less than or equal to {cap} ({key})"
        error = {"type": "less_than_equal", "loc": ("body", field), "msg": message, "input": value}
        raise RequestValidationError([error])

def stop_strings(stop) -> tuple[str, ...]:
    return (stop,) if isinstance(stop, str) else tuple(stop or ())

def engine_request(body: Knobs, prompt: str, max_new_tokens: int | None, stop=None, chat: bool = False) -> Request:
    return Request(prompt=prompt, mode=body.mode, tau_mask=body.tau_mask, tau_edit=body.tau_edit,
                   max_new_tokens=max_new_tokens, seed=body.seed, temperature=body.temperature, stop=stop_strings(stop),
                   chat=chat, remask=body.remask)
