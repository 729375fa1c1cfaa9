# Batch and benchmark jobs: POST /jobs queues a batch of prompts, or the fixed prompt set of
# assets/serve_bench_prompts.json, as one worker task whose prompts join the worker's batch a few rows at a time
# (waiting requests get the other rows); GET /jobs and GET /jobs/{id} poll, DELETE /jobs/{id} cancels between
# decoder passes. Results (in prompt order) carry per-prompt stats and a summary (tokens, forwards, refreshes,
# TPF, tokens/s). Entry points: router, JobStore, JobTask.
import asyncio, dataclasses, json, threading, time, uuid
from importlib import resources
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from hildanext.decode.decoder import tokens_per_forward
from hildanext.decode.engines import Completion
from hildanext.serve.common import ServeError, admit, state
from hildanext.serve.schemas import JobBody, check_cap, engine_request
from hildanext.serve.tasks import prepare_request
from hildanext.serve.worker import Task
FINAL = ("done", "cancelled", "failed")
router = APIRouter()
@dataclasses.dataclass
class Job:
    id: str
    kind: str
    prompts: list[str]
    created: float
    status: str = "queued"
    results: list = dataclasses.field(default_factory=list)
    error: str | None = None
    finished: float | None = None
    task: Task | None = None

def bench_prompts() -> dict:
    return json.loads(resources.files("hildanext").joinpath("assets/serve_bench_prompts.json").read_text())

def result_row(index: int, prompt: str, c: Completion) -> dict:
    stats = dataclasses.asdict(c.result.stats)
    return {"index": index, "prompt": prompt, "text": c.text, "finish_reason": c.finish_reason,
            "prompt_tokens": c.prompt_tokens, "completion_tokens": len(c.ids), "stats": stats}

def summary(rows: list[dict]) -> dict:
    tokens, forwards = sum(r["completion_tokens"] for r in rows), sum(r["stats"]["forwards"] for r in rows)
    refreshes, seconds = sum(r["stats"]["cache_forwards"] for r in rows), sum(r["stats"]["seconds"] for r in rows)
    return {"prompts": len(rows), "tokens": tokens, "forwards": forwards, "refreshes": refreshes,
            "tpf": tokens_per_forward(tokens, forwards + refreshes),
            "tokens_per_s": tokens / max(seconds, 1e-9), "seconds": seconds}

class JobStore:
    """Jobs by id, oldest first; at the limit the oldest finished job is dropped (429 when none is finished)."""
    def __init__(self, limit: int):
        self.limit, self.jobs, self.lock = limit, {}, threading.Lock()
    def add(self, job: Job) -> None:
        with self.lock:
            if len(self.jobs) >= self.limit:
                old = next((j for j in self.jobs.values() if j.status in FINAL), None)
                if old is None:
                    raise ServeError(429, f"{self.limit} jobs are queued or running (serve.max_jobs); retry later")
                del self.jobs[old.id]
            self.jobs[job.id] = job
    def get(self, job_id: str) -> Job:
        with self.lock:
            if job_id not in self.jobs:
                raise ServeError(404, f"no job {job_id!r}")
            return self.jobs[job_id]
    def view(self, job: Job, full: bool = True) -> dict:
        with self.lock:
            out = {"id": job.id, "object": "job", "kind": job.kind, "status": job.status, "created": job.created,
                   "finished": job.finished, "total": len(job.prompts), "completed": len(job.results),
                   "error": job.error}
            if not full:
                return out
            return out | {"results": list(job.results), "summary": summary(job.results) if job.results else None}
    def remove(self, job_id: str) -> None:
        with self.lock:
            self.jobs.pop(job_id, None)
    def all(self) -> list[Job]:
        with self.lock:
            return list(self.jobs.values())

class JobTask(Task):
    """The job's prompts as session rows, a few at a time (half the batch at most); close() records the outcome."""
    batched, greedy = True, False
    def __init__(self, job: Job, store: JobStore, base, context: int):
        super().__init__()
        self.job, self.store, self.base, self.context = job, store, base, context
    def size(self) -> int:
        return len(self.job.prompts)
    def join(self, engine, n: int) -> list[tuple]:
        with self.store.lock:
            self.job.status = "running"
        rows = []
        for i in range(self.joined, self.joined + n):
            request = dataclasses.replace(self.base, prompt=self.job.prompts[i])
            rows.append((i, prepare_request(engine, request, None, f"prompts.{i}", self.context), self.check))
        self.joined += n
        return rows
    def end(self, index: int, completion: Completion) -> None:
        with self.store.lock:
            self.job.results.append(result_row(index, self.job.prompts[index], completion))
            self.job.results.sort(key=lambda row: row["index"])
    def close(self) -> None:
        with self.store.lock:
            failed = self.error is not None and self.error.status not in (499, 503)
            self.job.status = "failed" if failed else "cancelled" if self.error is not None else "done"
            self.job.error, self.job.finished = (self.error.message if self.error else None), time.time()

@router.post("/jobs", status_code=202)
async def create_job(body: JobBody, request: Request):
    serve = state(request)
    limits = serve.params.serve
    check_cap(body.max_new_tokens, "max_new_tokens", limits.max_new_tokens_limit, "serve.max_new_tokens_limit")
    check_cap(len(body.prompts or ()), "prompts", limits.max_job_prompts, "serve.max_job_prompts")
    bench = bench_prompts() if body.kind == "benchmark" else {}
    prompts = body.prompts or bench["prompts"]
    max_new = body.max_new_tokens or bench.get("max_new_tokens")
    job = Job(f"job-{uuid.uuid4().hex[:12]}", body.kind, list(prompts), time.time())
    job.task = JobTask(job, serve.jobs, engine_request(body, "", max_new, chat=body.chat), limits.max_context)
    serve.jobs.add(job)
    try:
        admit(serve, job.task)
    except ServeError:
        serve.jobs.remove(job.id)
        raise
    return serve.jobs.view(job)

@router.get("/jobs")
async def list_jobs(request: Request):
    serve = state(request)
    return {"object": "list", "data": [serve.jobs.view(job, full=False) for job in serve.jobs.all()]}

@router.get("/jobs/{job_id}")
async def get_job(job_id: str, request: Request):
    serve = state(request)
    return serve.jobs.view(serve.jobs.get(job_id))

@router.delete("/jobs/{job_id}")
async def cancel_job(job_id: str, request: Request):
    """Cancel a job; waits (briefly) until the worker has stopped it, then returns the job."""
    serve = state(request)
    job = serve.jobs.get(job_id)
    job.task.cancel("cancelled by DELETE /jobs")
    for _ in range(200):
        if job.status in FINAL:
            break
        await asyncio.sleep(0.05)
    return JSONResponse(serve.jobs.view(job))
