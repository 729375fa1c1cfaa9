# The hildanext command line as users run it (a subprocess of the installed console script): --help lists
# the commands that exist, and known failures (offline fetch-model, a bad --set, a missing base model)
# print exactly one clear line and exit 2.
import subprocess, sys
from pathlib import Path
import pytest
BIN = Path(sys.executable).parent / "hildanext"
def run(*args, cwd=None):
    return subprocess.run([str(BIN), *args], cwd=cwd, capture_output=True, text=True, timeout=300)

def test_help_lists_existing_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("demo-base", "init-model", "fetch-model", "apply-overlay"):
        assert command in out.stdout

def test_fetch_model_offline_fails_with_one_line(workdir):
    out = run("fetch-model", cwd=workdir)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "Qwen/Qwen3-0.6B" in lines[0] and "models/qwen3-0.6b" in lines[0] and "model.safetensors" in lines[0]
    assert not (workdir / "models/qwen3-0.6b/model.safetensors").exists()

@pytest.mark.parametrize("args, expected", [
    (["init-model", "--set", "model.demo.steps=zero"], "model.demo.steps: Input should be a valid integer"),
    (["init-model", "--set", "model.base=models/nowhere"], "model.base: "),
    (["demo-base", "--set", "runtime.colour=red"], "runtime.colour: unknown key"),
])
def test_known_failures_print_one_line(workdir, args, expected):
    out = run(*args, cwd=workdir)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and expected in lines[0], out.stderr
