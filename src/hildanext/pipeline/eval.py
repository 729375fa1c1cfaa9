# The eval stage (`hildanext eval`): writes the shipped lm-eval tasks' data (data/eval) from data/processed's
# eval split, then scores eval.model (lm-eval model "hildanext") and the AR base (lm-eval's own hf model, counting)
# on eval.tasks with lm-eval's evaluator, offline; writes metrics/eval.json (per model and task: lm-eval's metrics
# and the requests, tokens, forwards, prefill_forwards, TPF without the prefill, tokens/s) and logs its numbers to
# MLflow. Entry points: run, evaluate_lm, metric_rows, flat_metrics.
import os, re
from importlib.metadata import version
from pathlib import Path
import pyarrow.parquet as pq
from hildanext.config import EvalParams, Params
from hildanext.decode.engines import make_engine
from hildanext.eval.harness import CountingHFLM, HildanextLM, task_rows
from hildanext.eval.tasks import SCORER_ENV, task_manager, write_task_data
from hildanext.files import write_json_atomic
from hildanext.pipeline import paths
def metric_rows(results: dict) -> dict:
    """lm-eval's results per task as plain numbers, its ",none" filter suffix dropped (other filters kept)."""
    return {task: {key.removesuffix(",none"): value for key, value in row.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)}
            for task, row in results.items()}

def evaluate_lm(lm, e: EvalParams) -> dict:
    """{task: lm-eval's metrics + the model's counts} for eval.tasks, offline, no bootstrap."""
    from lm_eval import simple_evaluate
    out = simple_evaluate(model=lm, tasks=list(e.tasks), task_manager=task_manager(e.tasks), limit=e.limit,
                          num_fewshot=e.num_fewshot, bootstrap_iters=0, log_samples=False, random_seed=e.seed,
                          confirm_run_unsafe_code=True)
    metrics, counts = metric_rows(out["results"]), task_rows(lm.meter)
    return {task: metrics.get(task, {}) | {"counts": counts.get(task, {})} for task in {*metrics, *counts}}

def flat_metrics(rows: dict) -> dict:
    """model/task/metric -> value, MLflow-safe names (other characters, e.g. "," and "@", become "_")."""
    flat = {}
    for model, tasks in rows.items():
        for task, row in tasks.items():
            numbers = row | {f"{kind}_{k}": v for kind, c in row.get("counts", {}).items() for k, v in c.items()}
            flat |= {re.sub(r"[^\w\-. :/]", "_", f"{model}/{task}/{k}"): float(v) for k, v in numbers.items()
                     if k != "counts"}
    return flat

def run(params: Params, tracker) -> dict:
    e = params.eval
    texts = pq.read_table(paths.PROCESSED / "eval.parquet", columns=["text"]).column("text").to_pylist()
    docs = write_task_data(texts, paths.EVAL_DATA, e.docs, e.seed)
    ar_dir = Path(e.ar_model) if e.ar_model else paths.base_folder(params)
    os.environ[SCORER_ENV] = str(ar_dir)
    engine = make_engine("diffusion", Path(e.model), params)
    ours = HildanextLM(engine=engine, pretrained=e.model, mode=e.mode, mc_num=e.mc_num, batch_size=e.batch_size,
                       seed=e.seed)
    ar = CountingHFLM(pretrained=str(ar_dir), batch_size=1, device=str(engine.model.device),
                      dtype=params.runtime.dtype)
    rows = {"hildanext": evaluate_lm(ours, e), "ar": evaluate_lm(ar, e)}
    report = {"model": e.model, "ar_model": str(ar_dir), "tasks": list(e.tasks), "docs": docs, "mode": e.mode,
              "mc_num": e.mc_num, "block_size": ours.spec.block_size, "shift": ours.spec.shift,
              "lm_eval": version("lm_eval"), "device": str(engine.model.device), "rows": rows}
    write_json_atomic(paths.metrics("eval"), report)
    return flat_metrics(rows)
