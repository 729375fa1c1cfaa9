# Experiment flows on one shared baseline (`dvc repro` in a committed ci-overlay copy): a queued experiment
# (`dvc exp run --queue`, `dvc queue start`) logs its bench and export runs to the parent's mlflow.db and
# mlruns, and `dvc push` to a local remote then `dvc pull models/export` in a fresh git clone serves the export
# (`python -m hildanext serve`, /health and the openai client) without any training output. Slow; `make test`.
import contextlib, json, os, signal, subprocess, sys, time
from pathlib import Path
from urllib.parse import urlparse
import mlflow, openai, pytest, yaml
from dvc_helpers import ci_copy, env, processes_under, sh
from test_serve import free_port, probe, wait_until
pytestmark = pytest.mark.slow
NAME, TAU = "tau-queued", "0.6"
NOT_PUSHED = ("models/wsd", "models/sft_ckpts", "models/distill_ckpts", "data/distill")
TRAINING = ("models/demo-base", "models/init", "models/wsd", "models/merged", "models/sft", "models/sft_ckpts",
            "models/distilled", "models/distill_ckpts", "data/distill",
            "data/processed", "data/tokenized", "data/sft")
@pytest.fixture(scope="module")
def baseline(repo_root, tmp_path_factory) -> Path:
    """The ci copy after one `dvc repro`, its lock committed; the queue leaves it clean, push only adds a remote."""
    repo = ci_copy(repo_root, tmp_path_factory.mktemp("flows") / "repo").resolve()
    sh(["dvc", "repro"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "lock"], repo)
    return repo

@pytest.fixture
def queue_repo(baseline):
    """The baseline; afterwards every queue worker and stage started under it is stopped, killed if it lingers."""
    yield baseline
    subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=baseline, env=env(), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)
    deadline = time.monotonic() + 60
    while processes_under(baseline) and time.monotonic() < deadline:
        time.sleep(1)
    for pid in processes_under(baseline):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

def queue_state(repo: Path, name: str) -> str:
    rows = [line.split() for line in sh(["dvc", "queue", "status"], repo).splitlines()]
    return next((cols[-1] for cols in rows if len(cols) > 2 and cols[1] == name), "missing")

def wait_for_task(repo: Path, name: str, timeout: float = 600) -> set[Path]:
    """Polls until the task ends (failing with its logs unless Success); returns each mlflow.db seen under .dvc/tmp."""
    deadline, state, strays = time.monotonic() + timeout, "missing", set()
    while time.monotonic() < deadline:
        strays |= {Path(d) / "mlflow.db" for d, _, files in os.walk(repo / ".dvc/tmp") if "mlflow.db" in files}
        state = queue_state(repo, name)
        if state not in ("Queued", "Running"):
            break
        time.sleep(5)
    if state != "Success":
        cmd = ["dvc", "queue", "logs", name]
        logs = subprocess.run(cmd, cwd=repo, env=env(), capture_output=True, text=True, timeout=120)
        pytest.fail(f"queued experiment {name}: {state}\n{logs.stdout}\n{logs.stderr}")
    return strays

def start_queue(repo: Path, log: Path) -> None:
    """`dvc queue start -j 1` into a file: the daemonized worker inherits stdout, so captured pipes would block."""
    with log.open("w") as out:
        cmd = ["dvc", "queue", "start", "-j", "1"]
        done = subprocess.run(cmd, cwd=repo, env=env(), stdout=out, stderr=subprocess.STDOUT, timeout=120)
    assert done.returncode == 0 and "Started '1' new" in log.read_text(), log.read_text()

def shown_experiment(repo: Path, name: str) -> dict:
    for entry in json.loads(sh(["dvc", "exp", "show", "--json"], repo)):
        for group in entry.get("experiments") or []:
            if group["name"] == name:
                return group["revs"][0]["data"] | {"executor": group["executor"]}
    raise AssertionError(f"{name} not in dvc exp show")

def test_queued_experiment_logs_to_the_parent_store(queue_repo, tmp_path):
    repo = queue_repo
    head = sh(["git", "rev-parse", "HEAD"], repo).strip()
    sh(["dvc", "exp", "run", "--queue", "-n", NAME, "-S", f"decode.tau_mask={TAU}"], repo)
    start_queue(repo, tmp_path / "queue.log")
    assert queue_state(repo, NAME) in ("Queued", "Running")
    strays = wait_for_task(repo, NAME)
    assert not strays and sh(["git", "status", "--porcelain"], repo) == ""
    client = mlflow.MlflowClient(f"sqlite:///{repo}/mlflow.db")
    experiment = client.get_experiment_by_name("hildanext")
    found = client.search_runs([experiment.experiment_id], f"tags.`dvc.exp_name` = '{NAME}'")
    runs = {r.info.run_name: r for r in found}
    assert experiment.artifact_location == (repo / "mlruns").as_uri() and sorted(runs) == ["bench", "eval", "export"]
    for run in runs.values():
        assert run.info.status == "FINISHED" and run.data.params["decode.tau_mask"] == TAU
        assert run.data.tags["dvc.exp_baseline_rev"] == head and run.data.tags["dvc.stage"] == run.info.run_name
        assert Path(urlparse(run.info.artifact_uri).path).is_relative_to(repo / "mlruns")
    assert runs["export"].data.metrics["tau_mask"] == float(TAU)
    assert not [p for p in (repo / ".dvc").rglob("*") if p.name in ("mlflow.db", "mlruns")]
    shown = shown_experiment(repo, NAME)
    assert shown["executor"]["state"] == "success"
    assert shown["params"]["params.yaml"]["data"]["decode"]["tau_mask"] == float(TAU)
    bench = shown["metrics"]["metrics/bench.json"]["data"]
    assert bench["perplexity"]["bd_elbo_bound"] == pytest.approx(runs["bench"].data.metrics["perplexity/bd_elbo_bound"])
    tokens_per_s = runs["bench"].data.metrics["active/tokens_per_s"]
    assert bench["settings"]["active"]["tokens_per_s"] == pytest.approx(tokens_per_s)

def cached_files(repo: Path, md5: str) -> set[str]:
    listing = json.loads((repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).read_text())
    return {md5} | {entry["md5"] for entry in listing}

@contextlib.contextmanager
def served(folder: Path, log: Path):
    """`python -m hildanext serve` in folder on a free port; yields (url, first /health); kills its group after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        cmd = [sys.executable, "-m", "hildanext", "serve", "--port", str(port)]
        proc = subprocess.Popen(cmd, cwd=folder, env=env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        health = wait_until(lambda: probe(f"{url}/health") or proc.poll() is not None, timeout=180)
        assert isinstance(health, dict), log.read_text()
        yield url, health
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

def test_push_then_pull_the_export_into_a_clone_and_serve_it(baseline, tmp_path):
    remote, clone = tmp_path / "remote", tmp_path.resolve() / "clone"
    sh(["dvc", "remote", "add", "-d", "local", str(remote)], baseline)
    sh(["dvc", "push"], baseline)
    sh(["git", "commit", "-qm", "remote", ".dvc/config"], baseline)
    stages = yaml.safe_load((baseline / "dvc.lock").read_text())["stages"].values()
    dirs = {o["path"]: o["md5"] for stage in stages for o in stage.get("outs", []) if o["md5"].endswith(".dir")}
    pushed = set().union(*(cached_files(baseline, md5) for path, md5 in dirs.items() if path not in NOT_PUSHED))
    held_back = set().union(*(cached_files(baseline, dirs[path]) for path in NOT_PUSHED)) - pushed
    assert {"models/export", "models/sft", *NOT_PUSHED} <= set(dirs) and held_back
    assert {p.parent.name + p.name for p in (remote / "files/md5").rglob("*") if p.is_file()} == pushed
    sh(["git", "clone", "-q", str(baseline), str(clone)], tmp_path)
    sh(["dvc", "pull", "models/export"], clone)
    meta = "models/export/hildanext.json"
    assert (clone / meta).read_bytes() == (baseline / meta).read_bytes()
    assert not [path for path in TRAINING if (clone / path).exists()]
    with served(clone, tmp_path / "serve.log") as (url, health):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=120)
        out = client.completions.create(model="any", prompt="Once upon a time", max_tokens=16, seed=1)
    served_from = (health["status"], health["model"], health["model_dir"])
    assert served_from == ("ok", "models/export", str(clone / "models/export"))
    assert out.model == "models/export" and out.choices[0].text and out.usage.completion_tokens > 0
    assert not [path for path in TRAINING if (clone / path).exists()] and not (clone / "mlflow.db").exists()
