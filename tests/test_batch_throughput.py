# Smoke test of benchmarks/batch_throughput.py on the tiny saved Qwen3: its main runs a live server per engine
# (diffusion, then ar) at concurrency 1 and 2 in float64; the table has one row per engine and concurrency,
# every request is answered, and the token counts equal those of the same greedy requests decoded in-process
# (speeds are not asserted). Also the nearest-rank percentile and the mixed-length openings.
import importlib.util, json
import pytest
from hildanext.config import apply_overrides, as_dict, validate, Params
from hildanext.decode.engines import Request, make_engine
@pytest.fixture
def script(repo_root, monkeypatch):
    monkeypatch.syspath_prepend(str(repo_root / "benchmarks"))
    spec = importlib.util.spec_from_file_location("batch_throughput", repo_root / "benchmarks/batch_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

def test_percentile_and_openings(script):
    assert script.percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0 and script.percentile([1.0, 2.0], 0.95) == 2.0
    assert script.percentile([], 0.5) is None
    prompts = script.openings(5)
    assert [len(p.split()) for p in prompts] == [4, 9, 14, 19, 24] and prompts == script.openings(5)

def test_main_serves_both_engines_and_the_counts_add_up(script, model_dir, tmp_path):
    out = tmp_path / "throughput.json"
    report = script.main(["--model", str(model_dir), "--ar-model", str(model_dir), "--concurrency", "2",
                          "--requests", "3", "--max-tokens", "4", "--warmup", "1", "--device", "cpu",
                          "--set", "runtime.threads=1", "--set", "runtime.dtype=float64", "--out", str(out)])
    rows = report["rows"]
    assert [(r["engine"], r["served"], r["concurrent"]) for r in rows] == [
        ("diffusion", "diffusion", 1), ("diffusion", "diffusion", 2), ("ar", "ar", 1), ("ar", "ar", 2)]
    assert all(r["requests"] == r["ok"] == 3 and r["failed"] == 0 and r["p50_s"] <= r["p95_s"] for r in rows)
    params = validate(apply_overrides(as_dict(Params()), ["runtime.dtype=float64"]), "test")
    for name, pair in (("diffusion", rows[:2]), ("ar", rows[2:])):
        engine = make_engine(name, model_dir, params)
        done = [engine.complete(Request(prompt=p, max_new_tokens=4, temperature=0.0)) for p in script.openings(3)]
        assert [r["tokens"] for r in pair] == [sum(len(c.ids) for c in done)] * 2 and pair[0]["tokens_per_s_vs_1"] == 1
    lines = report["table"].splitlines()
    assert len(lines) == 2 + 4 and lines[0].startswith("| engine | concurrent |")
    assert lines[5].startswith("| ar | 2 | 3 | 3 | 0 |")
    assert json.loads(out.read_text())["rows"] == rows
