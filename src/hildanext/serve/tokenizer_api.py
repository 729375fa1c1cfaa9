# The server's tokenizer over HTTP, in vLLM's shape, which lm-eval's RemoteTokenizer (tokenizer_backend=remote,
# auto-detected by local-completions) reads: GET /tokenizer_info (eos/bos/pad tokens, chat template, context),
# POST /tokenize {prompt, add_special_tokens} -> {tokens, count, max_model_len}, POST /detokenize {tokens} ->
# {prompt}; tokenizer calls run in the worker thread. Entry points: router.
from fastapi import APIRouter, Request
from hildanext.serve.common import admit, state, wait_event
from hildanext.serve.schemas import DetokenizeBody, TokenizeBody
from hildanext.serve.tasks import CallTask, known_ids
router = APIRouter()
def context_limit(serve) -> int:
    return serve.params.serve.max_context or serve.engine.model.config.max_position_embeddings

async def in_worker(request: Request, fn):
    serve = state(request)
    task = CallTask(fn)
    return (await wait_event(task, admit(serve, task), request, ("done",)))["value"]

@router.get("/tokenizer_info")
async def tokenizer_info(request: Request):
    serve = state(request)
    tokenizer = serve.engine.tokenizer
    out = {"eos_token": tokenizer.eos_token, "bos_token": tokenizer.bos_token, "pad_token": tokenizer.pad_token}
    out |= {"chat_template": tokenizer.chat_template, "model_max_length": context_limit(serve)}
    return out | {"tokenizer_class": type(tokenizer).__name__}

@router.post("/tokenize")
async def tokenize(body: TokenizeBody, request: Request):
    def encode(engine) -> list[int]:
        return engine.tokenizer(body.prompt, add_special_tokens=body.add_special_tokens)["input_ids"]
    tokens = await in_worker(request, encode)
    return {"tokens": tokens, "count": len(tokens), "max_model_len": context_limit(state(request))}

@router.post("/detokenize")
async def detokenize(body: DetokenizeBody, request: Request):
    def decode(engine) -> str:
        return engine.tokenizer.decode(known_ids(engine, body.tokens, "tokens"))
    return {"prompt": await in_worker(request, decode)}
