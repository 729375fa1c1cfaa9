# The server on a tiny saved Qwen3 folder: a live uvicorn on loopback hit by the official openai client
# (completions, chat, streaming == non-streaming, stop, usage, knobs as extra fields) and by httpx (/generate,
# jobs, validation, a bounded load test), TestClient for the dummy, the candidate order and one encoding per
# prompt, and a gated engine (a test hook on its session that holds each row after each block) for 429, dropped
# streams, timeouts, 500s and job cancels (one row at a time there: serve.max_batch=1).
import asyncio, dataclasses, shutil, signal, socket, subprocess, sys, threading, time
from pathlib import Path
import httpx, openai, pytest, torch, uvicorn
from fastapi.testclient import TestClient
from hildanext.config import Params, RuntimeParams, apply_overrides, as_dict, validate
from hildanext.decode.engines import DiffusionEngine, Request, make_engine
from hildanext.model import load_decoder
from hildanext.serve.app import create_app
BIN = Path(sys.executable).parent / "hildanext"
PROMPT = "Once upon a time, Lily went to the park."
LIMIT, CONTEXT = 200, 512
def make_params(model_dir, *extra):
    base = ["runtime.threads=1", f"serve.model_candidates=[{model_dir}]", f"serve.max_new_tokens_limit={LIMIT}",
            f"serve.max_context={CONTEXT}"]
    return validate(apply_overrides(as_dict(Params()), [*base, *extra]), "test params")

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

class LiveServer:
    """uvicorn in a thread on a free loopback port."""
    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.02)
        assert self.server.started, "uvicorn did not start"
        return self
    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)

@pytest.fixture(scope="module")
def library(model_dir):
    """The same folder decoded in-process (one torch thread, as the server): the expectation it must reproduce."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield make_engine("diffusion", model_dir, make_params(model_dir))
    torch.set_num_threads(threads)

@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0, timeout=60)

class GatedEngine(DiffusionEngine):
    """Test hook: never stops early; session rows wait for the gate after each block (ticking); 'boom' raises."""
    def __init__(self, *args):
        super().__init__(*args)
        banned = tuple(sorted({*self.special.banned_ids, *self.special.stops}))
        self.special, self.gate = dataclasses.replace(self.special, banned_ids=banned), threading.Event()
    def session(self, max_rows: int):
        session = super().session(max_rows)
        add = session.add
        def gated_add(prepared, observer=None):
            def gated(event):
                if prepared.request.prompt == "boom":
                    raise RuntimeError("boom")
                observer(event)
                while event["type"] == "block" and not self.gate.wait(0.02):
                    observer({"type": "tick"})
            return add(prepared, gated)
        session.add = gated_add
        return session

@pytest.fixture(scope="module")
def gated_engine(model_dir):
    return GatedEngine(*load_decoder(model_dir, RuntimeParams()), make_params(model_dir), model_dir)

def gated_server(engine, model_dir, *extra):
    engine.gate.clear()
    return LiveServer(create_app(make_params(model_dir, *extra), engine=engine))

def wait_until(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")

def stop_reason(library, ids) -> str:
    return "stop" if ids and ids[-1] in library.special.stops else "length"

def test_health_and_models_report_the_folder(live, model_dir):
    health = httpx.get(f"{live.url}/health").json()
    got = (health["status"], health["model"], health["model_dir"], health["engine"], health["device"])
    assert got == ("ok", str(model_dir), str(model_dir.resolve()), "diffusion", "cpu")
    assert health["queue"] == {"size": 4, "pending": 0, "running": 0, "waiting": 0}
    assert [m["id"] for m in httpx.get(f"{live.url}/v1/models").json()["data"]] == [str(model_dir)]

def test_completion_equals_the_in_process_decoder(client, library):
    out = client.completions.create(model="any", prompt=PROMPT, max_tokens=40, seed=3, temperature=1.0)
    expected = library.complete(Request(prompt=PROMPT, max_new_tokens=40, seed=3, temperature=1.0))
    prompt_tokens = len(library.tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    assert out.object == "text_completion" and out.choices[0].text == expected.text
    assert out.choices[0].finish_reason == stop_reason(library, expected.ids)
    usage = (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens)
    assert usage == (prompt_tokens, len(expected.ids), prompt_tokens + len(expected.ids))
    other = client.completions.create(model="any", prompt=PROMPT, max_tokens=40, seed=4, temperature=1.0)
    assert other.choices[0].text != out.choices[0].text

def test_chat_applies_the_template_server_side(client, library):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a story."}]
    out = client.chat.completions.create(model="any", messages=messages, max_tokens=24, seed=1, temperature=1.0)
    rendered = library.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                     enable_thinking=False)
    expected = library.complete(Request(prompt=rendered, max_new_tokens=24, seed=1, temperature=1.0))
    assert out.choices[0].message.role == "assistant" and out.choices[0].message.content == expected.text
    assert out.usage.prompt_tokens == len(library.tokenizer(rendered, add_special_tokens=False)["input_ids"])

@pytest.mark.parametrize("chat", [False, True])
def test_stream_concatenates_to_the_non_streamed_answer(client, chat):
    kw = dict(model="any", max_tokens=90, seed=5, temperature=1.0)
    if chat:
        kw["messages"] = [{"role": "user", "content": "Tell me a story."}]
        full = client.chat.completions.create(**kw)
        chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
        deltas, text = [c.choices[0].delta.content or "" for c in chunks if c.choices], full.choices[0].message.content
    else:
        full = client.completions.create(prompt=PROMPT, **kw)
        usage = {"include_usage": True}
        chunks = list(client.completions.create(prompt=PROMPT, **kw, stream=True, stream_options=usage))
        deltas, text = [c.choices[0].text for c in chunks if c.choices], full.choices[0].text
    assert "".join(deltas) == text and sum(bool(d) for d in deltas) >= 2
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == full.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == full.usage.model_dump()

def test_raw_stream_is_sse_ending_with_done(live):
    body = {"prompt": PROMPT, "max_tokens": 40, "stream": True}
    with httpx.stream("POST", f"{live.url}/v1/completions", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [e for e in r.read().decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"

def test_stop_strings_cut_the_text(client):
    kw = dict(model="any", prompt=PROMPT, max_tokens=60, seed=7, temperature=1.0)
    text = client.completions.create(**kw).choices[0].text
    stop = next(c for c in text if c != "\ufffd" and text.index(c) > 0)
    cut = client.completions.create(**kw, stop=[stop, "never seen"])
    assert (cut.choices[0].text, cut.choices[0].finish_reason) == (text[: text.index(stop)], "stop")
    streamed = client.completions.create(**kw, stop=stop, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == text[: text.index(stop)]

def test_decoder_knobs_ride_as_extra_fields(client, library):
    out = client.completions.create(model="any", prompt=PROMPT, max_tokens=40,
                                    extra_body={"mode": "Q", "tau_mask": 0.0})
    expected = library.complete(Request(prompt=PROMPT, mode="Q", tau_mask=0.0, max_new_tokens=40))
    assert out.choices[0].text == expected.text
    with pytest.raises(openai.UnprocessableEntityError, match="mode"):
        client.completions.create(model="any", prompt=PROMPT, extra_body={"mode": "fast"})

def test_generate_reports_stats_and_an_explicit_tau_beats_the_mode(live):
    one = httpx.post(f"{live.url}/generate",
                     json={"prompt": PROMPT, "mode": "S", "tau_mask": 1.0, "max_new_tokens": 40, "trace": True},
                     timeout=60).json()
    assert all(len(r["unmasked"]) <= 1 for r in one["trace"]) and one["stats"]["forwards"] == len(one["trace"])
    stats = one["stats"]
    assert stats["tpf"] == pytest.approx(stats["tokens"] / (stats["forwards"] + stats["cache_forwards"]))
    assert stats["tpf"] <= 1 and stats["prefill_forwards"] <= 1
    assert stats["tokens_per_s"] > 0
    many = httpx.post(f"{live.url}/generate",
                      json={"prompt": PROMPT, "mode": "Q", "tau_mask": 0.0, "max_new_tokens": 40}, timeout=60).json()
    assert "trace" not in many and many["stats"]["tpf"] > 1 and many["text"]
    assert many["finish_reason"] in ("stop", "length")
    assert (many["settings"]["tau_mask"], many["settings"]["tau_edit"], one["settings"]["tau_edit"]) == (0.0, 0.5, 0.0)

@pytest.mark.parametrize("path, body, field", [
    ("/v1/completions", {"prompt": "x", "colour": "red"}, "colour"),
    ("/v1/completions", {"prompt": "x", "max_tokens": -1}, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "max_tokens": LIMIT + 1}, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "mode": "X"}, "mode"),
    ("/v1/completions", {"prompt": "x", "n": 2}, "n"),
    ("/v1/completions", {"prompt": "x", "top_p": 0.5}, "top_p"),
    ("/v1/completions", {"prompt": "word " * 600}, "prompt"),
    ("/v1/chat/completions", {"messages": []}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": LIMIT + 1},
     "max_completion_tokens"),
    ("/generate", {"prompt": "x", "tau_edit": 1.5}, "tau_edit"),
    ("/generate", {"prompt": "x", "seed": -1}, "seed"),
    ("/generate", {}, "prompt"),
    ("/jobs", {"kind": "benchmark", "prompts": ["x"]}, "body"),
    ("/jobs", {"prompts": ["x"] * 65}, "prompts"),
])
def test_bad_requests_get_422_naming_the_field(live, path, body, field):
    r = httpx.post(f"{live.url}{path}", json=body, timeout=60)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == field and field in error["message"] and error["type"] == "invalid_request_error"

def job_done(url: str, job_id: str):
    job = httpx.get(f"{url}/jobs/{job_id}").json()
    return job if job["status"] in ("done", "failed", "cancelled") else None

def test_batch_and_benchmark_jobs(live, library):
    prompts = ["The little dog", "Tom had a kite."]
    r = httpx.post(f"{live.url}/jobs", json={"prompts": prompts, "mode": "Q", "max_new_tokens": 20})
    assert r.status_code == 202 and r.json()["status"] in ("queued", "running", "done")
    job = wait_until(lambda: job_done(live.url, r.json()["id"]))
    assert job["status"] == "done" and job["completed"] == job["total"] == 2
    expected = [library.complete(Request(prompt=p, mode="Q", max_new_tokens=20)).text for p in prompts]
    assert [row["text"] for row in job["results"]] == expected
    assert job["summary"]["tokens"] == sum(row["completion_tokens"] for row in job["results"])
    bench = httpx.post(f"{live.url}/jobs", json={"kind": "benchmark", "max_new_tokens": 8}).json()
    bench = wait_until(lambda: job_done(live.url, bench["id"]))
    summary = bench["summary"]
    assert bench["status"] == "done" and bench["total"] >= 4 and summary["prompts"] == bench["total"]
    assert summary["tpf"] == pytest.approx(summary["tokens"] / (summary["forwards"] + summary["refreshes"]))
    listed = {j["id"]: j["status"] for j in httpx.get(f"{live.url}/jobs").json()["data"]}
    assert listed[job["id"]] == listed[bench["id"]] == "done"
    missing = f"{live.url}/jobs/job-nope"
    assert httpx.get(missing).status_code == httpx.delete(missing).status_code == 404

def test_without_a_folder_the_dummy_serves_and_candidates_go_in_order(tmp_path, model_dir):
    params = make_params(model_dir, "serve.model_candidates=[models/export, models/sft, models/merged, models/init]")
    started = time.monotonic()
    with TestClient(create_app(params, tmp_path)) as http:
        health = http.get("/health").json()
        out = http.post("/generate", json={"prompt": "Once upon a time", "max_new_tokens": 8}).json()
    assert time.monotonic() - started < 60 and (health["model"], health["model_dir"]) == ("dummy", None)
    assert isinstance(out["text"], str) and out["completion_tokens"] <= 8 and out["stats"]["forwards"] >= 1
    for name in ("init", "merged"):
        shutil.copytree(model_dir, tmp_path / "models" / name)
    with TestClient(create_app(params, tmp_path)) as http:
        assert http.get("/health").json()["model"] == "models/merged"
        assert http.get("/v1/models").json()["data"][0]["id"] == "models/merged"

def test_each_prompt_is_encoded_and_resolved_once_per_request(model_dir, monkeypatch):
    engine = DiffusionEngine(*load_decoder(model_dir, RuntimeParams()), make_params(model_dir), model_dir)
    encoded, resolved, tokenizer_call = [], [], type(engine.tokenizer).__call__
    def counting_call(tokenizer, *args, **kw):
        encoded.extend([args[0]] if tokenizer is engine.tokenizer else [])
        return tokenizer_call(tokenizer, *args, **kw)
    def counting_resolve(request, resolve=engine.resolve):
        return resolved.append(request.prompt) or resolve(request)
    monkeypatch.setattr(type(engine.tokenizer), "__call__", counting_call)
    monkeypatch.setattr(engine, "resolve", counting_resolve)
    chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    with TestClient(create_app(make_params(model_dir), engine=engine)) as http:
        for path, body in (("/generate", {"prompt": "one", "max_new_tokens": 4}),
                           ("/v1/completions", {"prompt": "two", "max_tokens": 4}),
                           ("/v1/completions", {"prompt": "three", "max_tokens": 4, "stream": True}),
                           ("/v1/chat/completions", chat)):
            assert http.post(path, json=body).status_code == 200
        assert http.get("/live/stream", params={"prompt": "four", "max_new_tokens": 4}).status_code == 200
        job = http.post("/jobs", json={"prompts": ["five", "six"], "max_new_tokens": 4}).json()
        assert wait_until(lambda: http.get(f"/jobs/{job['id']}").json()["status"] == "done")
    rendered = engine.tokenizer.apply_chat_template(chat["messages"], tokenize=False, add_generation_prompt=True,
                                                    enable_thinking=False)
    assert encoded == resolved == ["one", "two", "three", rendered, "four", "five", "six"]

def test_full_queue_gets_429_and_a_dropped_stream_frees_its_slot(gated_engine, model_dir):
    with gated_server(gated_engine, model_dir, "serve.queue_size=1", "serve.retry_after_s=3") as live:
        body = {"prompt": PROMPT, "max_tokens": 100, "stream": True}
        with httpx.Client(timeout=60) as held, held.stream("POST", f"{live.url}/v1/completions", json=body) as stream:
            lines = stream.iter_lines()
            first = next(lines)
            assert first.startswith("data: {") and "text_completion" in first
            health = httpx.get(f"{live.url}/health").json()
            assert health["queue"] == {"size": 1, "pending": 1, "running": 1, "waiting": 0}
            refused = httpx.post(f"{live.url}/generate", json={"prompt": "hi"}, timeout=60)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "3"
            assert refused.json()["error"]["type"] == "rate_limit_error"
            assert refused.json()["queue"] == {"pending": 1, "size": 1}
        wait_until(lambda: httpx.get(f"{live.url}/health").json()["queue"]["pending"] == 0)
        gated_engine.gate.set()
        served = httpx.post(f"{live.url}/generate", json={"prompt": "hi", "max_new_tokens": 8}, timeout=60)
        assert served.status_code == 200 and served.json()["completion_tokens"] <= 8

def test_timeouts_cancel_and_generation_errors_give_500(gated_engine, model_dir):
    with gated_server(gated_engine, model_dir, "serve.request_timeout_s=1") as live:
        late = httpx.post(f"{live.url}/generate", json={"prompt": PROMPT, "max_new_tokens": 100}, timeout=60)
        assert late.status_code == 504 and "serve.request_timeout_s" in late.json()["error"]["message"]
        wait_until(lambda: httpx.get(f"{live.url}/health").json()["queue"]["pending"] == 0)
        gated_engine.gate.set()
        broken = httpx.post(f"{live.url}/v1/completions", json={"prompt": "boom"}, timeout=60)
        assert broken.status_code == 500 and "RuntimeError: boom" in broken.json()["error"]["message"]
        assert httpx.post(f"{live.url}/generate", json={"prompt": "hi", "max_new_tokens": 4},
                          timeout=60).status_code == 200

def test_jobs_cancel_while_running_and_while_queued(gated_engine, model_dir):
    with gated_server(gated_engine, model_dir, "serve.queue_size=3", "serve.max_batch=1") as live:
        running = httpx.post(f"{live.url}/jobs", json={"prompts": [PROMPT, PROMPT], "max_new_tokens": 40}).json()
        wait_until(lambda: httpx.get(f"{live.url}/jobs/{running['id']}").json()["status"] == "running")
        queued = httpx.post(f"{live.url}/jobs", json={"kind": "benchmark"}).json()
        assert queued["status"] == "queued" and httpx.get(f"{live.url}/health").json()["queue"]["pending"] == 2
        for job in (queued, running):
            out = httpx.delete(f"{live.url}/jobs/{job['id']}", timeout=60).json()
            assert out["status"] == "cancelled" and out["completed"] == 0 and out["results"] == []
        assert httpx.get(f"{live.url}/health").json()["queue"]["pending"] == 0
        gated_engine.gate.set()

async def load(url: str, seeds: list[int], concurrency: int) -> list[dict]:
    """Each seed's request through `concurrency` client tasks (a short pause after a 429): status, text, times."""
    todo, out = list(enumerate(seeds)), []
    async def client(http):
        while todo:
            i, seed = todo.pop()
            sent = time.monotonic()
            r = await http.post(f"{url}/v1/completions",
                                json={"prompt": PROMPT, "max_tokens": 8, "seed": seed, "temperature": 1.0})
            text = r.json()["choices"][0]["text"] if r.status_code == 200 else None
            out.append({"seed": seed, "status": r.status_code, "text": text, "sent": sent, "done": time.monotonic(),
                        "body": r.json()})
            await asyncio.sleep(0.2 if r.status_code == 429 else 0)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return out

def test_bounded_load_answers_or_refuses_without_cross_talk(live):
    started = time.monotonic()
    reference = {r["seed"]: r["text"] for r in asyncio.run(load(live.url, list(range(5)), 1))}
    assert all(r is not None for r in reference.values()) and len(set(reference.values())) > 1
    results = asyncio.run(load(live.url, [i % 5 for i in range(200)], 16))
    ok, refused = [r for r in results if r["status"] == 200], [r for r in results if r["status"] == 429]
    assert len(results) == 200 and len(ok) + len(refused) == 200 and len(ok) >= 4
    assert all(r["text"] == reference[r["seed"]] for r in ok)
    for r in refused:
        overlapping = [s for s in ok if s["sent"] < r["done"] and s["done"] > r["sent"]]
        assert r["body"]["queue"] == {"pending": 4, "size": 4} and len(overlapping) >= 4
    assert httpx.get(f"{live.url}/health").json()["queue"]["pending"] == 0 and time.monotonic() - started < 120

def test_cli_serve_help_lists_host_and_port():
    out = subprocess.run([str(BIN), "serve", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--host" in out.stdout and "--port" in out.stdout

@pytest.mark.slow
def test_cli_serve_answers_with_no_weights_at_all(tmp_path):
    port = free_port()
    proc = subprocess.Popen([str(BIN), "serve", "--port", str(port), "--set", "runtime.threads=1"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        health = wait_until(lambda: probe(f"http://127.0.0.1:{port}/health"), timeout=120)
        out = httpx.post(f"http://127.0.0.1:{port}/generate", json={"prompt": "Once upon a time", "max_new_tokens": 8},
                         timeout=60)
        assert health["model"] == "dummy" and out.status_code == 200 and out.json()["model"] == "dummy"
    finally:
        proc.send_signal(signal.SIGINT)
        log = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, log

def probe(url: str):
    try:
        return httpx.get(url, timeout=5).json()
    except httpx.TransportError:
        return None
