# `hildanext smoke-test` from a folder without pipeline outputs: one line per step (model, WSD step, SFT batch,
# one decode per preset), then OK, exit 0; a failing step (here: a CUDA device on a machine without one, or
# a bad params key) exits non-zero with one line.
import subprocess, sys
from pathlib import Path
import torch
BIN = Path(sys.executable).parent / "hildanext"
def run(cwd, *args):
    return subprocess.run([str(BIN), "smoke-test", *args], cwd=cwd, capture_output=True, text=True, timeout=300)

def test_smoke_test_prints_each_step_then_ok(tmp_path):
    out = run(tmp_path)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0, out.stderr
    assert [line.split(":")[0] for line in lines[:-1]] == ["model", "wsd step", "sft batch", "decode S", "decode Q"]
    assert lines[-1].startswith("OK") and "demo model" in lines[0]
    assert out.stderr.splitlines()[0] == "params: built-in defaults (no params.yaml, no model folder)"

def test_smoke_test_fails_loudly(tmp_path):
    if not torch.cuda.is_available():
        out = run(tmp_path, "--set", "runtime.device=cuda")
        assert out.returncode != 0 and "smoke-test failed" in out.stderr
    bad = run(tmp_path, "--set", "runtime.nope=1")
    assert bad.returncode != 0 and "runtime.nope" in bad.stderr + bad.stdout
