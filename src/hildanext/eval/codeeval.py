# Micro HumanEval: small Python function tasks (assets/micro_humaneval.jsonl) completed by an Engine and run
# against hidden tests in a sandbox: a fresh `python -I` in a temporary folder, RLIMITs (memory, CPU, file size,
# processes, no core), a wall-clock kill of the process group, and no network (`unshare -n`, else a socket stub).
# Entry points: load_tasks, extract_body, run_program, evaluate, complete_tasks, code_request, harness_self_test.
import json, math, os, re, shutil, signal, socket, subprocess, sys, tempfile, time
from collections import Counter
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from hildanext.decode.engines import Request
ASSETS = Path(__file__).resolve().parents[1] / "assets"
RUNNER = ASSETS / "sandbox_runner.py"
STATUSES = ("passed", "failed", "timeout", "memory", "error")
STOP_STRINGS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(")
STOP_LINE = re.compile(r"(def |async def |class |if __name__|print\(|assert )")
ISOLATIONS = {"unshare -n": ("unshare", "-n"), "unshare -rn": ("unshare", "-r", "-n"), "sockets": (), "none": ()}
@dataclass(frozen=True)
class CodeTask:
    task_id: str
    prompt: str
    entry_point: str
    tests: str
    reference: str
    wrong: str

@dataclass(frozen=True)
class RunResult:
    status: str
    detail: str
    isolation: str
    seconds: float

def load_tasks(path: Path = ASSETS / "micro_humaneval.jsonl") -> list[CodeTask]:
    return [CodeTask(**json.loads(line)) for line in Path(path).read_text().splitlines() if line.strip()]

def strip_fences(text: str) -> str:
    """Text before the first ``` fence if any, else the first fenced block without its language tag."""
    if "```" not in text:
        return text
    before, _, after = text.partition("```")
    if before.strip():
        return before
    block = after.split("```")[0]
    tag, _, rest = block.partition("\n")
    return rest if tag.strip().isidentifier() or not tag.strip() else block

def extract_body(prompt: str, completion: str) -> str:
    """The prompt plus the completion cut at the first top-level def/class/if __name__/print(/assert line."""
    names = re.findall(r"^def (\w+)\(", prompt, re.M)
    restated = f"def {names[-1]}(" if names else None
    kept, indented = [], False
    for line in strip_fences(completion).splitlines(keepends=True):
        top_level = bool(line.strip()) and not line[0].isspace()
        restates = bool(restated) and not indented and line.startswith(restated)
        if top_level and STOP_LINE.match(line) and not restates:
            break
        indented = indented or (bool(line.strip()) and line[0].isspace())
        kept.append(line)
    return prompt + "".join(kept)

def command_prefix(isolation: str) -> list[str]:
    prefix = list(ISOLATIONS[isolation])
    return [shutil.which(prefix[0]) or prefix[0], *prefix[1:]] if prefix else []

@cache
def network_isolation() -> str:
    """The first of `unshare -n`, `unshare -rn` that runs here as the current user, else `sockets`."""
    for name in ("unshare -n", "unshare -rn"):
        if shutil.which("unshare") is None:
            break
        with suppress(OSError, subprocess.TimeoutExpired):
            probe = subprocess.run([*command_prefix(name), sys.executable, "-I", "-c", "pass"], capture_output=True,
                                   timeout=30)
            if probe.returncode == 0:
                return name
    return "sockets"

def sandbox_env(folder: Path) -> dict:
    return {"PATH": "/usr/bin:/bin", "HOME": str(folder), "TMPDIR": str(folder), "LC_ALL": "C.UTF-8"}

def wait_or_kill(process: subprocess.Popen, timeout_s: float) -> bool:
    """Wait for the child; kill its whole process group either way; True when the wall clock ran out."""
    try:
        process.wait(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return timed_out

def classify(folder: Path, returncode: int, timed_out: bool, timeout_s: float) -> tuple[str, str]:
    if timed_out:
        return "timeout", f"killed after {timeout_s:g} s of wall clock"
    with suppress(OSError, ValueError, KeyError):
        result = json.loads((folder / "result.json").read_text())
        return result["status"], result["detail"]
    stderr = (folder / "stderr").read_text(errors="replace")[-2000:]
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout", f"CPU limit (signal {-returncode})"
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return "memory", "out of memory before the tests finished"
    last = (stderr.strip().splitlines() or ["no output"])[-1][:160]
    return "error", f"exit {returncode} before the tests finished: {last}"

def run_program(program: str, tests: str, entry_point: str, timeout_s: float = 3.0, memory_mb: int = 512,
                isolation: str | None = None) -> RunResult:
    """Run program + tests + check(entry_point) in a fresh sandboxed interpreter; never raises for its faults."""
    isolation = isolation or network_isolation()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hildanext-code-", ignore_cleanup_errors=True) as tmp:
        folder = Path(tmp)
        (folder / "program.py").write_text(program)
        (folder / "tests.py").write_text(tests)
        args = ["program.py", "tests.py", entry_point, "result.json", str(memory_mb), str(math.ceil(timeout_s)),
                "1" if isolation == "sockets" else "0"]
        command = [*command_prefix(isolation), sys.executable, "-I", str(RUNNER), *args]
        with open(folder / "stdout", "wb") as out, open(folder / "stderr", "wb") as err:
            process = subprocess.Popen(command, cwd=folder, env=sandbox_env(folder), stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=err, start_new_session=True)
            timed_out = wait_or_kill(process, timeout_s)
        status, detail = classify(folder, process.returncode, timed_out, timeout_s)
    return RunResult(status, detail, isolation, round(time.monotonic() - started, 3))

def run_body(task: CodeTask, body: str, timeout_s: float, memory_mb: int) -> RunResult:
    return run_program(extract_body(task.prompt, body), task.tests, task.entry_point, timeout_s, memory_mb)

def summarize(results: dict[str, RunResult]) -> dict:
    counts = Counter(r.status for r in results.values())
    isolation = sorted({r.isolation for r in results.values()})
    out = {"tasks": len(results), "pass@1": counts["passed"] / max(len(results), 1)}
    out |= {"counts": {s: counts[s] for s in STATUSES}, "isolation": ", ".join(isolation)}
    return out | {"results": {k: asdict(r) for k, r in results.items()}}

def evaluate(completions: dict[str, str], tasks: list[CodeTask] | None = None, timeout_s: float = 3.0,
             memory_mb: int = 512) -> dict:
    """pass@1 (one greedy completion per task), counts by status and per-task results; a missing completion is empty."""
    tasks = tasks or load_tasks()
    return summarize({t.task_id: run_body(t, completions.get(t.task_id, ""), timeout_s, memory_mb) for t in tasks})

def code_request(mode: str | None = None, max_new_tokens: int = 128) -> Request:
    return Request(prompt="", mode=mode, max_new_tokens=max_new_tokens, seed=0, temperature=0.0, stop=STOP_STRINGS)

def complete_tasks(engine, template: Request | None = None, tasks: list[CodeTask] | None = None) -> dict[str, str]:
    """One completion per task prompt (the template's settings; greedy with code stop strings by default)."""
    template = template or code_request()
    return {t.task_id: engine.complete(replace(template, prompt=t.prompt)).text for t in tasks or load_tasks()}

@contextmanager
def listening_port():
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]

def harness_self_test(timeout_s: float = 2.0, memory_mb: int = 256) -> dict:
    """References pass, wrong bodies fail, a loop is a timeout, a memory bomb is memory, the network is blocked."""
    tasks, started = load_tasks(), time.monotonic()
    reference = Counter(run_body(t, t.reference, timeout_s, memory_mb).status for t in tasks)
    wrong = Counter(run_body(t, t.wrong, timeout_s, memory_mb).status for t in tasks)
    cases = json.loads((ASSETS / "codeeval_selftest.json").read_text())
    with listening_port() as port:
        runs = {name: run_program(c["program"], c["tests"].replace("PORT", str(port)), c["entry_point"], timeout_s,
                                  memory_mb) for name, c in cases.items()}
    got = {name: run.status for name, run in runs.items()}
    ok = reference["passed"] == len(tasks) and wrong["failed"] == len(tasks)
    ok = ok and all(got[n] == c["expected"] for n, c in cases.items())
    out = {"ok": ok, "isolation": network_isolation(), "tasks": len(tasks), "reference": dict(reference)}
    return out | {"wrong": dict(wrong), "cases": got, "seconds": round(time.monotonic() - started, 2)}
