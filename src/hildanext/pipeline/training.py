# What the wsd and sft stages share beyond train.setup: the MLflow run id to continue (the run of the
# checkpoint the stage would resume from), the tracked start (resolved profile logged as params), and the
# finish (save the final model with provenance, pick the best checkpoint, write metrics/<stage>.json), and the
# frozen AR teacher of logit KD. Entry points: resume_run_id(job, params, manifest), start(job, p, params, shards),
# finish(run, model, out, extra), load_teacher(params, device).
from pathlib import Path
import mlflow
from hildanext.config import Params, TrainParams, as_dict
from hildanext.files import write_json_atomic
from hildanext.model import load_model, model_meta, save_model
from hildanext.pipeline import paths
from hildanext.train.checkpoints import Checkpoints, checkpoint_run_id
from hildanext.train.profiles import resolve_profile
from hildanext.train.setup import TrainJob, TrainRun, fingerprint, start_training
def resume_run_id(job: TrainJob, params: Params, manifest: Path) -> str | None:
    def current():
        return fingerprint(job, resolve_profile(params.runtime), params.lora)
    return checkpoint_run_id(Checkpoints(job.ckpt_dir, 1, 0, ""), manifest, current)

def start(job: TrainJob, p: TrainParams, params: Params, shards) -> TrainRun:
    """start_training under the active MLflow run (none: untracked, e.g. rank > 0), resolved profile logged."""
    active = mlflow.active_run()
    run = start_training(job, p, params, shards, active.info.run_id if active else "")
    if active:
        mlflow.log_params({f"resolved.{k}": v for k, v in as_dict(run.profile).items()})
    return run

def finish(run: TrainRun, model, out: Path, steps: int, extra: dict) -> dict:
    """Save model to out, write metrics/<stage>.json (steps, final and best eval, extra); flat final/ + start/."""
    state, ckpts, stage = run.state, run.ckpts, run.job.stage
    meta = model_meta(run.tokenizer, stage, run.params, run.params.wsd.decay_to, state["fingerprint"], paths.commit())
    save_model(model, run.tokenizer, out, meta | {"eval": state["eval"]})
    best = ckpts.best()
    metrics = {"steps": steps, "final": state["eval"], "best_checkpoint": best.name, "best": ckpts.state(best)["eval"]}
    metrics |= extra
    write_json_atomic(paths.metrics(stage), metrics)
    return {f"{part}/{k}": v for part in ("final", "start") if part in metrics for k, v in metrics[part].items()}

def load_teacher(params: Params, device):
    """The AR base (the folder bench compares against), frozen in eval mode on the student's device."""
    teacher = load_model(paths.base_folder(params), params.runtime)[0].to(device).eval()
    return teacher.requires_grad_(False)
