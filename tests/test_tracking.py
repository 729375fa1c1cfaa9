# MLflow tracking in a temporary sqlite store: one run per stage, params logged flat with dotted keys, DVC
# experiment tags, metrics every log_every steps, nested phase runs, DVC_ROOT respected, and the experiment's
# artifact location pinned under the root; the experiment carries mlflow.experimentKind = custom_model_development
# (MLflow's kind for model training), also added to an older experiment without it, never overwritten.
import mlflow
from hildanext.config import Params, RuntimeParams, flatten
from hildanext.tracking import stage_run, tracking_root
def runs(root):
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    return mlflow.search_runs(experiment_names=["hildanext"], order_by=["start_time ASC"])

def test_stage_run_logs_params_tags_and_stepped_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_EXP_NAME", "brave-exp")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "abc123")
    params = Params(runtime=RuntimeParams(log_every=3))
    assert tracking_root() == tmp_path.resolve()
    with stage_run("demo_base", params) as tracker:
        for step in range(10):
            tracker.log({"loss": 10 - step}, step)
        with tracker.phase("warmup", {"block_size": 4}):
            tracker.log({"phase_loss": 1.0}, 0)
    df = runs(tmp_path)
    parent = df[df["tags.mlflow.runName"] == "demo_base"].iloc[0]
    child = df[df["tags.mlflow.runName"] == "warmup"].iloc[0]
    logged = {k.removeprefix("params."): v for k, v in parent.items() if k.startswith("params.") and isinstance(v, str)}
    assert logged == {k: str(v) for k, v in flatten(params).items()} and parent["params.runtime.log_every"] == "3"
    tags = (parent["tags.dvc.exp_name"], parent["tags.dvc.exp_baseline_rev"], parent["tags.hildanext.stage"])
    assert tags == ("brave-exp", "abc123", "demo_base")
    assert child["tags.mlflow.parentRunId"] == parent["run_id"] and child["params.block_size"] == "4"
    history = mlflow.tracking.MlflowClient().get_metric_history(parent["run_id"], "loss")
    assert [(m.step, m.value) for m in history] == [(0, 10.0), (3, 7.0), (6, 4.0), (9, 1.0)]
    assert mlflow.get_experiment_by_name("hildanext").artifact_location == (tmp_path.resolve() / "mlruns").as_uri()

def test_two_stage_runs_share_one_experiment(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    for stage in ("demo_base", "init"):
        with stage_run(stage, Params()):
            pass
    df = runs(tmp_path)
    assert list(df["tags.mlflow.runName"]) == ["demo_base", "init"] and set(df["status"]) == {"FINISHED"}

def test_the_experiment_is_tagged_as_custom_model_development(tmp_path, monkeypatch):
    kind = "mlflow.experimentKind"
    for name, tags in (("fresh", None), ("older", {}), ("chosen", {kind: "genai_development"})):
        root = tmp_path / name
        root.mkdir()
        mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
        if tags is not None:
            mlflow.create_experiment("hildanext", tags=tags)
            assert mlflow.get_experiment_by_name("hildanext").tags.get(kind) == tags.get(kind)
        monkeypatch.setenv("DVC_ROOT", str(root))
        with stage_run("init", Params()):
            pass
        expected = "genai_development" if name == "chosen" else "custom_model_development"
        assert mlflow.get_experiment_by_name("hildanext").tags[kind] == expected and len(runs(root)) == 1
