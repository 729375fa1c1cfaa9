# The batching server (issue 20) on the tiny saved Qwen3 behind a real uvicorn: the official openai client with
# max_retries=6 gets all of 64 requests sent 16 at a time; a float64 load test (200 requests, 32 concurrent, mixed
# lengths, S and Q, lists of prompts, streams, some cancelled or dropped) where every answer equals the request
# decoded alone by engine.run; /health shows several rows running together (a gate on the rows' observers), a
# dropped stream leaves the other rows' answers intact; the startup memory check (hand-computed K/V bytes, the
# gtx1080 overlay with Qwen3-0.6B, a one-line error from `hildanext serve`).
import asyncio, json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import httpx, openai, pytest, yaml
import hildanext
from fastapi.testclient import TestClient
from hildanext.config import ParamsError, RuntimeParams
from hildanext.decode.engines import Request, make_engine
from hildanext.model import load_decoder
from hildanext.serve.app import create_app
from hildanext.serve.capacity import batch_bytes, kv_cache_bytes
from hildanext.train.profiles import PROFILES
from test_serve import PROMPT, GatedEngine, LiveServer, free_port, make_params, wait_until
PROMPTS = ["Tom", "The little dog ran", PROMPT, " ".join([PROMPT, "She saw a big red ball and a small cat."] * 3)]
KNOBS = [("S", 0, 0.0, 8), ("Q", 0, 0.0, 12), ("S", 3, 1.0, 10), ("Q", 5, 1.0, 16)]
QWEN3_06B = {"layers": 28, "kv_heads": 8, "head_dim": 128, "context": 40960, "params": 600_000_000}
GTX1080_BYTES = 8 * 2**30
SPECS = 40
def idle(url: str) -> dict | None:
    health = httpx.get(f"{url}/health").json()
    quiet = health["queue"]["pending"] == 0 and (health["batch"]["rows"], health["batch"]["waiting"]) == (0, 0)
    return health if quiet else None

def rows_running(url: str, rows: int) -> dict | None:
    health = httpx.get(f"{url}/health").json()
    return health if health["batch"]["rows"] == rows else None

def test_kv_cache_bytes_by_hand():
    per_position = 28 * 2 * 8 * 128 * 4
    assert per_position == 229_376
    assert kv_cache_bytes(28, 8, 128, 4, 40960) == 9_395_240_960
    assert kv_cache_bytes(2, 2, 8, 2, 3 * 100) == 2 * 2 * 2 * 8 * 2 * 300 == 38_400

def test_batch_bytes_counts_the_cache_and_the_weights(model_dir):
    model, _ = load_decoder(model_dir, RuntimeParams())
    weights = sum(p.numel() * 4 for p in model.parameters()) + sum(b.numel() * 4 for b in model.buffers())
    assert batch_bytes(model, 3, 100) == weights + 2 * 2 * 2 * 8 * 4 * 300

def test_the_gtx1080_overlay_fits_qwen3_06b_and_the_defaults_do_not(repo_root):
    serve = yaml.safe_load((repo_root / "overlays" / "gtx1080.yaml").read_text())["serve"]
    q, cap = QWEN3_06B, PROFILES["gtx1080"].max_vram_pct * GTX1080_BYTES
    weights = q["params"] * 4
    def needed(rows: int, context: int) -> int:
        return kv_cache_bytes(q["layers"], q["kv_heads"], q["head_dim"], 4, rows * context) + weights
    assert needed(serve["max_batch"], serve["max_context"]) <= cap < needed(8, q["context"])

def test_a_batch_past_the_memory_cap_fails_startup_in_one_line(model_dir, tmp_path):
    params = make_params(model_dir, "serve.max_context=1000000000000")
    engine = make_engine("diffusion", model_dir, params)
    with pytest.raises(ParamsError, match=r"serve\.max_batch: 8 rows x a context of 1000000000000 tokens need"):
        with TestClient(create_app(params, engine=engine)):
            pass
    command = [sys.executable, "-m", "hildanext", "serve", "--port", str(free_port()), "--set", "runtime.threads=1",
               "--set", "serve.max_context=1000000000000"]
    source = {"PYTHONPATH": str(Path(hildanext.__file__).parents[1])}
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=os.environ | source)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and lines[-1].startswith("hildanext: error: serve.max_batch: 8 rows")
    assert "memory cap" in lines[-1] and "bytes" in lines[-1]

def test_the_openai_client_with_retries_gets_all_64_answers(model_dir):
    with LiveServer(create_app(make_params(model_dir))) as live:
        health = httpx.get(f"{live.url}/health").json()
        assert health["batch"] == {"max": 8, "rows": 0, "waiting": 0, "steps": 0} and health["queue"]["size"] == 32
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=6, timeout=120)
        def ask(i: int):
            return client.completions.create(model="any", prompt=PROMPTS[i % 3], max_tokens=8, seed=i, temperature=1.0)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, range(64)))
        assert len(answers) == 64 and all(a.choices[0].finish_reason in ("stop", "length") for a in answers)
        assert all(a.usage.completion_tokens <= 8 for a in answers)
        assert wait_until(lambda: idle(live.url))["batch"]["steps"] >= 1

def spec_body(i: int) -> dict:
    """Request i's body: one of SPECS, each a prompt (or two) with a knob set, streamed or not."""
    j = i % SPECS
    mode, seed, temperature, max_tokens = KNOBS[j % len(KNOBS)]
    prompt = PROMPTS[(j // len(KNOBS)) % len(PROMPTS)]
    body = {"max_tokens": max_tokens, "seed": seed, "temperature": temperature, "mode": mode}
    if j % 10 == 3:
        return body | {"prompt": [prompt, PROMPTS[(j // len(KNOBS) + 1) % len(PROMPTS)]]}
    return body | {"prompt": prompt, "stream": j % 5 == 1}

def kind_of(i: int) -> str:
    return "timeout" if i % 25 == 7 else "dropped" if i % 25 == 13 else "full"

async def send(http: httpx.AsyncClient, url: str, i: int) -> dict:
    """One request: read fully, given up after a client-side timeout, or a stream closed after its headers."""
    body, kind = spec_body(i), kind_of(i)
    if kind == "dropped":
        one = body | {"prompt": body["prompt"][0] if isinstance(body["prompt"], list) else body["prompt"]}
        async with http.stream("POST", f"{url}/v1/completions", json=one | {"stream": True}) as r:
            return {"i": i, "kind": kind, "status": r.status_code}
    try:
        timeout = 0.05 if kind == "timeout" else 120
        if body.get("stream"):
            async with http.stream("POST", f"{url}/v1/completions", json=body, timeout=timeout) as r:
                if r.status_code != 200:
                    return {"i": i, "kind": kind, "status": r.status_code, "body": json.loads(await r.aread())}
                chunks = [json.loads(line[6:]) async for line in r.aiter_lines() if line.startswith("data: {")]
            if any("error" in c for c in chunks):
                return {"i": i, "kind": kind, "status": 500, "body": chunks}
            return {"i": i, "kind": kind, "status": 200, "texts": ["".join(c["choices"][0]["text"] for c in chunks)]}
        r = await http.post(f"{url}/v1/completions", json=body, timeout=timeout)
        choices = r.json()["choices"] if r.status_code == 200 else None
        return {"i": i, "kind": kind, "status": r.status_code, "body": r.json(),
                "texts": [c["text"] for c in choices] if choices else None, "choices": choices}
    except httpx.TimeoutException:
        return {"i": i, "kind": kind, "status": None}

async def load(url: str, count: int, concurrency: int, tries: int = 4) -> list[dict]:
    """Requests 0..count-1 through `concurrency` clients; a 429 is retried after a short pause, `tries` times in all."""
    todo, out = list(range(count)), []
    async def client(http):
        while todo:
            i = todo.pop(0)
            for _ in range(tries):
                if (r := await send(http, url, i))["status"] != 429:
                    break
                await asyncio.sleep(0.2)
            out.append(r)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return out

def alone(engine, body: dict) -> list:
    prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
    asked = [Request(prompt=p, mode=body["mode"], max_new_tokens=body["max_tokens"], seed=body["seed"],
                     temperature=body["temperature"]) for p in prompts]
    return [engine.run(engine.prepare(r)) for r in asked]

def test_float64_load_answers_every_request_as_if_alone(model_dir):
    params = make_params(model_dir, "runtime.dtype=float64")
    engine = make_engine("diffusion", model_dir, params)
    expected = {i: alone(engine, spec_body(i)) for i in range(SPECS)}
    with LiveServer(create_app(params, engine=engine)) as live:
        results = asyncio.run(load(live.url, 200, 32))
        health = wait_until(lambda: idle(live.url))
    assert sorted(r["i"] for r in results) == list(range(200))
    assert all(r["status"] in (200, 429) for r in results if r["kind"] != "timeout")
    answered = [r for r in results if r["status"] == 200 and r.get("texts") is not None]
    assert len(answered) >= 150 and health["status"] == "ok" and health["dtype"] == "float64"
    for r in answered:
        want = expected[r["i"] % SPECS]
        assert r["texts"] == [c.text for c in want], r["i"]
        if r.get("choices"):
            got = [(c["finish_reason"], c["index"]) for c in r["choices"]]
            assert got == [(c.finish_reason, k) for k, c in enumerate(want)]
            assert r["body"]["usage"]["completion_tokens"] == sum(len(c.ids) for c in want)
    assert all(r["body"]["queue"]["size"] == 32 for r in results if r["status"] == 429)
    assert health["batch"]["steps"] >= len(answered)

def test_health_shows_rows_running_together_and_a_dropped_row_leaves_the_others(model_dir):
    engine = GatedEngine(*load_decoder(model_dir, RuntimeParams()), make_params(model_dir), model_dir)
    asks = [{"prompt": p, "max_tokens": 24, "seed": 2, "temperature": 1.0} for p in PROMPTS[:2]]
    expected = [engine.run(engine.prepare(Request(prompt=a["prompt"], max_new_tokens=24, seed=2, temperature=1.0)))
                for a in asks]
    engine.gate.clear()
    params = make_params(model_dir, "serve.max_batch=3", "serve.batch_wait_s=600")
    with LiveServer(create_app(params, engine=engine)) as live, ThreadPoolExecutor(2) as pool:
        answers = [pool.submit(httpx.post, f"{live.url}/v1/completions", json=a, timeout=120) for a in asks]
        try:
            with httpx.stream("POST", f"{live.url}/v1/completions", json=asks[0] | {"stream": True}, timeout=120) as r:
                assert r.status_code == 200
                health = wait_until(lambda: rows_running(live.url, 3))
            assert health["batch"]["max"] == 3 and health["queue"]["running"] == 3
            assert not any(a.done() for a in answers)
        finally:
            engine.gate.set()
        texts = [a.result().json()["choices"][0]["text"] for a in answers]
        assert texts == [c.text for c in expected]
        assert wait_until(lambda: idle(live.url))["batch"]["steps"] >= 1
