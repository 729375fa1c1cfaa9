# The FastAPI app: create_app(params, base, engine=None, loaded=None) with a lifespan hook that loads the model
# off the event loop (the first existing serve.model_candidates folder, else the tiny random dummy), checks that
# the batch fits the memory cap (capacity) and starts the one batching worker; GET /health (queue and batch),
# POST /generate (text plus forwards, TPF, tokens/s, optional per-pass trace), the OpenAI routes (openai_api),
# the tokenizer routes (tokenizer_api), jobs (jobs) and the live view (live). Entry points: create_app, run_server.
import dataclasses, time
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
import anyio
from fastapi import APIRouter, FastAPI, Request
from hildanext.config import Params
from hildanext.serve import jobs, live, openai_api, tokenizer_api
from hildanext.serve.capacity import check_batch_fits
from hildanext.serve.common import ServeState, admit, install_error_handlers, state, wait_event
from hildanext.serve.loading import load_engine
from hildanext.serve.schemas import GenerateBody, check_cap, engine_request
from hildanext.serve.tasks import GenTask
from hildanext.serve.worker import Worker
router = APIRouter()
@router.get("/health")
async def health(request: Request):
    serve = state(request)
    model = serve.engine.model
    jobs_active = sum(job.status not in jobs.FINAL for job in serve.jobs.all())
    folder = str(serve.model_dir) if serve.model_dir else None
    out = {"status": "ok", "model": serve.model, "model_dir": folder, "engine": serve.engine.name}
    out |= {"device": str(model.device), "dtype": str(model.dtype).removeprefix("torch.")}
    return out | {"queue": serve.worker.depth(), "batch": serve.worker.batch(), "jobs": {"active": jobs_active}}

@router.post("/generate")
async def generate(body: GenerateBody, request: Request):
    serve = state(request)
    limits = serve.params.serve
    check_cap(body.max_new_tokens, "max_new_tokens", limits.max_new_tokens_limit, "serve.max_new_tokens_limit")
    task = GenTask(engine_request(body, body.prompt, body.max_new_tokens, body.stop, body.chat),
                   context=limits.max_context)
    event = await wait_event(task, admit(serve, task), request, ("done",))
    c = event["completion"]
    out = {"text": c.text, "finish_reason": c.finish_reason, "model": serve.model, "engine": c.engine}
    out |= {"mode": body.mode, "prompt_tokens": c.prompt_tokens, "completion_tokens": len(c.ids)}
    out |= {"settings": event["settings"].view(), "stats": dataclasses.asdict(c.result.stats), "notices": c.notices}
    remask = {"remask": dataclasses.asdict(c.result.remask) if c.result.remask else None}
    return out | ({"trace": [dataclasses.asdict(r) for r in c.result.trace]} | remask if body.trace else {})

def create_app(params: Params, base: Path = Path("."), engine=None, loaded: tuple | None = None) -> FastAPI:
    """The app; engine (tests) or loaded (load_engine's answer, already checked) replaces loading the candidates."""
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        found = loaded
        if found is None and engine is not None:
            found = (engine, str(engine.model_dir or "custom"), engine.model_dir)
        if found is None:
            found = await anyio.to_thread.run_sync(load_engine, params, Path(base))
        if loaded is None:
            check_batch_fits(params, found[0].model)
        limits = params.serve
        worker = Worker(found[0], limits.queue_size, params.runtime.threads, limits.max_batch, limits.batch_wait_s)
        app.state.serve = ServeState(params, *found, worker, jobs.JobStore(limits.max_jobs), int(time.time()))
        worker.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(worker.stop)
    app = FastAPI(title="hildanext", version=version("hildanext"), lifespan=lifespan)
    install_error_handlers(app)
    for part in (router, openai_api.router, tokenizer_api.router, jobs.router, live.router):
        app.include_router(part)
    return app

def run_server(params: Params, host: str | None = None, port: int | None = None, base: Path = Path(".")) -> None:
    """Load and check the model (a batch that cannot fit fails here, in one line), then serve it."""
    import uvicorn
    found = load_engine(params, Path(base))
    check_batch_fits(params, found[0].model)
    port = params.serve.port if port is None else port
    uvicorn.run(create_app(params, base, loaded=found), host=host or params.serve.host, port=port,
                timeout_graceful_shutdown=5)
