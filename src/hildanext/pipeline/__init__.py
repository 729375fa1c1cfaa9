# The single entry that both stages/<name>.py and the CLI call: run_stage(name, params_path, overrides) reads
# params at the edge, seeds, opens the MLflow run and calls the stage body named in STAGES (imported lazily,
# so the CLI stays fast and this dispatch file is not a DVC dependency of any stage's output). Under a
# multi-process launch (RANK > 0) the stage runs without MLflow; rank 0 tracks and writes.
import importlib, os, random
from pathlib import Path
import torch
from hildanext import tracking
from hildanext.config import Params, load_params
STAGES = {"demo_base": "hildanext.train.demo:demo_base_stage", "init": "hildanext.model:init_stage", "prepare": "hildanext.data.prepare:prepare_stage", "tokenize": "hildanext.data.packing:tokenize_stage", "wsd": "hildanext.train.wsd:wsd_stage", "merge": "hildanext.train.merge:merge_stage", "sft_data": "hildanext.data.sft_data:sft_data_stage", "sft": "hildanext.train.sft:sft_stage", "bench": "hildanext.eval.bench:bench_stage", "export": "hildanext.pipeline.export:export_stage"}
def stage_body(name: str):
    module, _, func = STAGES[name].partition(":")
    return getattr(importlib.import_module(module), func)

def seed_everything(params: Params) -> None:
    random.seed(params.runtime.seed)
    torch.manual_seed(params.runtime.seed)
    if params.runtime.threads:
        torch.set_num_threads(params.runtime.threads)

def run_stage(name: str, params_path: str | Path = "params.yaml", overrides=()) -> dict:
    params = load_params(params_path, overrides)
    body = stage_body(name)
    seed_everything(params)
    resume = getattr(body, "resume_run_id", None)
    if int(os.environ.get("RANK", "0")) > 0:
        return body(params, Path.cwd(), tracking.Tracker(params.runtime.log_every, enabled=False))
    with tracking.stage_run(name, params, run_id=resume(params, Path.cwd()) if resume else None) as tracker:
        metrics = body(params, Path.cwd(), tracker)
        tracker.log(metrics, force=True)
    return metrics
