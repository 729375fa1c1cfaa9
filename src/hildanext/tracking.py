# MLflow tracking shared by every stage: one run per stage execution in sqlite:///<root>/mlflow.db, where
# root is DVC_ROOT when set (queued DVC experiments log to the parent repo) or the working directory.
# Entry points: tracking_root(), stage_run(stage, params, root, run_id) -> Tracker (log every runtime.log_every
# steps, nested phase runs; run_id continues a resumed run). The experiment is tagged mlflow.experimentKind =
# custom_model_development (on create, and added to an older one): the UI's ML kind (3.17 follows its own switch).
import contextlib, logging, os
from pathlib import Path
import mlflow
from hildanext.config import flatten
from hildanext.files import git_commit
def tracking_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()

EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
def experiment_id(root: Path, name: str) -> str:
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        try:
            return mlflow.create_experiment(name, artifact_location=(root / "mlruns").as_uri(), tags=EXPERIMENT_KIND)
        except mlflow.exceptions.MlflowException:
            exp = mlflow.get_experiment_by_name(name)
    for key, value in EXPERIMENT_KIND.items():
        if key not in exp.tags:
            mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id

class Tracker:
    def __init__(self, log_every: int, enabled: bool = True):
        self.log_every, self.enabled = log_every, enabled
    def log(self, metrics: dict, step: int | None = None, force: bool = False) -> None:
        if self.enabled and (force or step is None or step % self.log_every == 0):
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)
    @contextlib.contextmanager
    def phase(self, name: str, params: dict | None = None, run_id: str | None = None):
        """A nested run for one phase (continued when run_id is given); yields its run id, None when disabled."""
        if not self.enabled:
            yield None
            return
        with mlflow.start_run(run_id=run_id, run_name=None if run_id else name, nested=True) as run:
            if run_id is None:
                mlflow.log_params(params or {})
            yield run.info.run_id

def run_tags(stage: str) -> dict:
    env = {"dvc.exp_name": "DVC_EXP_NAME", "dvc.exp_baseline_rev": "DVC_EXP_BASELINE_REV", "dvc.stage": "DVC_STAGE"}
    dvc = {k: os.environ.get(v, "") for k, v in env.items()}
    return {"hildanext.stage": stage, "git.commit": git_commit(Path.cwd())} | dvc

@contextlib.contextmanager
def stage_run(stage: str, params, root: Path | None = None, run_id: str | None = None):
    root = root or tracking_root()
    mlflow.set_experiment(experiment_id=experiment_id(root, params.runtime.experiment))
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else stage, tags=None if run_id else run_tags(stage)):
        flat = {k: str(v) for k, v in flatten(params).items()}
        for keys in [list(flat)[i : i + 100] for i in range(0, len(flat), 100)] if run_id is None else []:
            mlflow.log_params({k: flat[k] for k in keys})
        yield Tracker(params.runtime.log_every)
