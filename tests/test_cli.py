# The hildanext command line as users run it (mostly a subprocess of the installed console script): the app
# has exactly the expected commands and aliases, --help lists each by its name, an alias fails exactly like its
# command, and known failures (offline fetch-model, a bad --set, a missing base model) print one line and exit 2.
import os, re, subprocess, sys
from pathlib import Path
import pytest
import typer
from typer.testing import CliRunner
BIN = Path(sys.executable).parent / "hildanext"
COMMANDS = {"demo-base", "init", "prepare", "tokenize", "sft-data", "distill-data", "wsd", "merge", "sft", "distill",
            "bench", "export", "fetch-model", "fetch-data", "apply-overlay", "generate", "serve", "smoke-test", "eval",
            "lm-eval"}
ALIASES = {"init-model": "init", "prepare-data": "prepare", "prepare-sft": "sft-data", "convert-wsd": "wsd"}
FAILING_ARGS = {"init": [], "prepare": ["--set", "prepare.sources=nowhere/*.jsonl"], "sft-data": [], "wsd": []}
def run(*args, cwd=None, env=None):
    return subprocess.run([str(BIN), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)

def listed_commands(help_text: str) -> set[str]:
    """The names in the Commands table of typer's rich --help output."""
    table = help_text.split("Commands", 1)[1].split("╰", 1)[0] if "Commands" in help_text else ""
    return {m.group(1) for line in table.splitlines() if (m := re.match(r"│ ([a-z][a-z0-9-]*) ", line))}

def test_help_table_parser_reads_names_not_substrings():
    text = ("╭─ Commands ─╮\n│ prepare-sft  Render chats │\n│              into rows (sft) │\n│ sft  SFT │\n"
            "╰──╯\n│ x  y │")
    assert listed_commands(text) == {"prepare-sft", "sft"} and listed_commands("no table") == set()

def test_every_command_exists_by_its_exact_name():
    from hildanext.cli import app
    assert set(typer.main.get_command(app).commands) == COMMANDS | set(ALIASES)
    out = run("--help", env=os.environ | {"COLUMNS": "200"})
    assert out.returncode == 0 and COMMANDS <= listed_commands(out.stdout) <= COMMANDS | set(ALIASES), out.stdout

def test_each_alias_runs_its_command(workdir):
    from hildanext.cli import app
    messages = {}
    for alias, command in ALIASES.items():
        results = [CliRunner().invoke(app, [name, *FAILING_ARGS[command]]) for name in (alias, command)]
        lines = [r.stderr.strip().splitlines() for r in results]
        assert [r.exit_code for r in results] == [2, 2] and len(lines[0]) == 1 and lines[0] == lines[1], lines
        messages[command] = lines[0][0]
    assert len(set(messages.values())) == len(ALIASES), messages

UNREACHABLE = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
@pytest.mark.parametrize("env, reason", [({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
                                         (UNREACHABLE, "127.0.0.1 unreachable")])
def test_fetch_model_offline_fails_with_one_line(workdir, env, reason):
    out = run("fetch-model", cwd=workdir, env=os.environ | env)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert reason in lines[0] and "Qwen/Qwen3-0.6B" in lines[0]
    assert "models/qwen3-0.6b" in lines[0] and "model.safetensors" in lines[0]
    assert not (workdir / "models/qwen3-0.6b/model.safetensors").exists()
    assert out.stdout.strip() == "fetch-model: params from params.yaml"

def test_fetch_data_offline_fails_with_one_line(workdir):
    out = run("fetch-data", cwd=workdir)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("hildanext: error: fetch-data:"), out.stderr
    assert "data/raw/dolma" in lines[0] and "data/raw/tinystories" in lines[0]
    assert out.stdout.strip() == "fetch-data: params from params.yaml"

@pytest.mark.parametrize("args, expected", [
    (["prepare-data", "--set", "prepare.sources=nowhere/*.jsonl"],
     "prepare.sources[0].paths: 'nowhere/*.jsonl' matches no file"),
    (["init-model", "--set", "demo_base.steps=zero"], "demo_base.steps: Input should be a valid integer"),
    (["init-model", "--set", "model.base=models/nowhere"], "model.base: "),
    (["demo-base", "--set", "runtime.colour=red"], "runtime.colour: unknown key"),
    (["export"], "metrics/bench.json is missing; run the bench stage first"),
])
def test_known_failures_print_one_line(workdir, args, expected):
    out = run(*args, cwd=workdir)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and expected in lines[0], out.stderr

def test_convert_wsd_without_inputs_fails_with_one_line(workdir):
    out = run("convert-wsd", cwd=workdir)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "models/init: not a Hugging Face model folder" in lines[0], out.stderr
