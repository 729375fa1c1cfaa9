# The single entry that both stages/<name>.py and the CLI call: run_stage(name, params_path, overrides) reads
# params at the edge (and prints which file it read), seeds, opens the MLflow run (continuing the one the
# module's resume_run_id(params) names, when it has one) and calls run(params, tracker) of the stage's module
# in STAGES, imported lazily so the CLI stays fast. Under a multi-process launch (RANK > 0) the stage runs
# without MLflow; rank 0 tracks and writes. Stage name = pipeline module = params section.
import importlib, os, random
from pathlib import Path
import torch
from hildanext import tracking
from hildanext.config import Params, load_params
NAMES = ("demo_base", "init", "prepare", "tokenize", "sft_data", "distill_data", "wsd", "merge", "sft", "distill",
         "bench", "export", "eval")
STAGES = {name: f"hildanext.pipeline.{name}" for name in NAMES}
def seed_everything(params: Params) -> None:
    random.seed(params.runtime.seed)
    torch.manual_seed(params.runtime.seed)
    if params.runtime.threads:
        torch.set_num_threads(params.runtime.threads)

def params_line(name: str, params_path, overrides) -> str:
    return f"{name}: params from {params_path}" + (f" (+{len(overrides)} --set)" if overrides else "")

def run_stage(name: str, params_path: str | Path = "params.yaml", overrides=()) -> dict:
    params = load_params(params_path, overrides)
    print(params_line(name, params_path, overrides))
    module = importlib.import_module(STAGES[name])
    seed_everything(params)
    if int(os.environ.get("RANK", "0")) > 0:
        return module.run(params, tracking.Tracker(params.runtime.log_every, enabled=False))
    resume = getattr(module, "resume_run_id", None)
    with tracking.stage_run(name, params, run_id=resume(params) if resume else None) as tracker:
        metrics = module.run(params, tracker)
        tracker.log(metrics, force=True)
    return metrics
