# The hildanext command line as users run it (a subprocess of the installed console script): --help lists
# the commands that exist, and known failures (offline fetch-model, a bad --set, a missing base model)
# print exactly one clear line and exit 2.
import os, subprocess, sys
from pathlib import Path
import pytest
BIN = Path(sys.executable).parent / "hildanext"
def run(*args, cwd=None, env=None):
    return subprocess.run([str(BIN), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)

def test_help_lists_existing_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("demo-base", "init-model", "prepare-data", "tokenize", "prepare-sft", "sft", "fetch-model", "fetch-data", "apply-overlay", "generate", "serve"):
        assert command in out.stdout

@pytest.mark.parametrize("env, reason", [({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"), ({"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}, "127.0.0.1 unreachable")])
def test_fetch_model_offline_fails_with_one_line(workdir, env, reason):
    out = run("fetch-model", cwd=workdir, env=os.environ | env)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert reason in lines[0] and "Qwen/Qwen3-0.6B" in lines[0] and "models/qwen3-0.6b" in lines[0] and "model.safetensors" in lines[0]
    assert not (workdir / "models/qwen3-0.6b/model.safetensors").exists()

def test_fetch_data_offline_fails_with_one_line(workdir):
    out = run("fetch-data", cwd=workdir)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("hildanext: error: fetch-data:"), out.stderr
    assert "data/raw/dolma" in lines[0] and "data/raw/tinystories" in lines[0]

@pytest.mark.parametrize("args, expected", [
    (["prepare-data", "--set", "prepare.sources=nowhere/*.jsonl"], "prepare.sources[0].paths: 'nowhere/*.jsonl' matches no file"),
    (["init-model", "--set", "demo_base.steps=zero"], "demo_base.steps: Input should be a valid integer"),
    (["init-model", "--set", "model.base=models/nowhere"], "model.base: "),
    (["demo-base", "--set", "runtime.colour=red"], "runtime.colour: unknown key"),
])
def test_known_failures_print_one_line(workdir, args, expected):
    out = run(*args, cwd=workdir)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and expected in lines[0], out.stderr

def test_convert_wsd_without_inputs_fails_with_one_line(workdir):
    out = run("convert-wsd", cwd=workdir)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "models/init: not a Hugging Face model folder" in lines[0], out.stderr
