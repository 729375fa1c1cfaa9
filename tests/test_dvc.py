# Real DVC in a temporary copy of the repository with the ci overlay: `dvc repro` runs the whole DAG,
# records MLflow runs in <copy>/mlflow.db, a second repro runs nothing, and `dvc exp run -S` of a key only
# init depends on re-runs init alone. Slow (spawns the stages); run by `make test`.
import json, re, os, subprocess
import mlflow
import pytest
from dvc_helpers import ci_copy, env, sh
pytestmark = pytest.mark.slow
STAGES = ("demo_base", "init", "prepare", "tokenize", "sft_data", "distill_data", "wsd", "merge", "sft", "distill",
          "bench", "export", "eval")
def test_dvc_repro_twice_then_exp_run(repo_root, tmp_path):
    repo = ci_copy(repo_root, tmp_path / "repo")
    first = sh(["dvc", "repro"], repo)
    assert all(f"Running stage '{stage}'" in first for stage in STAGES)
    assert (repo / "models/init/hildanext.json").exists() and "data/tokenized" in (repo / "dvc.lock").read_text()
    assert json.loads((repo / "metrics/data.json").read_text())["splits"]["train"]["docs"] > 300
    rows = json.loads((repo / "metrics/eval.json").read_text())["rows"]
    assert set(rows) == {"hildanext", "ar"} and rows["hildanext"]["hildanext_story"]["counts"]["generate_until"]
    assert rows["hildanext"]["hildanext_story_choice"]["acc"] >= 0 and rows["ar"]["hildanext_rolling"]
    second = sh(["dvc", "repro"], repo)
    assert "Running stage" not in second and "Data and pipelines are up to date" in second
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "lock"], repo)
    exp = sh(["dvc", "exp", "run", "-S", "runtime.attn_implementation=eager"], repo)
    assert "Running stage 'init'" in exp and "Running stage 'wsd'" in exp
    assert "Running stage 'demo_base'" not in exp and "Running stage 'prepare'" not in exp
    mlflow.set_tracking_uri(f"sqlite:///{repo}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["hildanext"], order_by=["start_time ASC"])
    top = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert sorted(set(top["tags.mlflow.runName"])) == sorted(STAGES) and set(runs["status"]) == {"FINISHED"}
    last = top[top["tags.mlflow.runName"] == "wsd"].iloc[-1]
    assert len(top[top["tags.mlflow.runName"] == "wsd"]) == 2
    assert last["tags.dvc.exp_name"] != "" and last["tags.dvc.exp_baseline_rev"] != ""
    assert last["params.runtime.attn_implementation"] == "eager" and len(runs) - len(top) >= 6
    decode = sh(["dvc", "exp", "run", "-S", "decode.tau_mask=0.7"], repo)
    ran = set(re.findall(r"Running stage '(\w+)'", decode))
    assert ran == {"bench", "export", "eval"}, decode
    table = json.loads(sh(["dvc", "exp", "show", "--json"], repo))
    assert "0.7" in json.dumps(table) and "bench.json" in json.dumps(table)

def test_killed_wsd_resumes_on_the_next_repro(repo_root, tmp_path):
    import signal, time
    repo = ci_copy(repo_root, tmp_path / "repo", "wsd:\n  stable_steps: 200\n")
    sh(["dvc", "repro", "tokenize"], repo)
    proc = subprocess.Popen(["dvc", "repro", "-s", "wsd"], cwd=repo, env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list((repo / "models/wsd").glob("ckpt-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "wsd finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    again = sh(["dvc", "repro"], repo)
    assert "wsd: resuming from" in again and "Running stage 'wsd'" in again
    assert (repo / "models/wsd/final/hildanext.json").exists()
