# The bench stage (`hildanext bench`): S and Q rows of each bench.candidates folder, then bench.model (best: the
# candidate eval/candidates.py picks) against the AR base (bench.ar_model or the base folder): ELBO bound vs AR
# perplexity on data/tokenized's eval split, generations from data/processed's held-out openings per setting
# (active, S, Q, frontier points, AR), batch rows, micro HumanEval pass@1, block-forward vs AR-step cost and the
# S/Q presets the frontier suggests -> metrics/bench.json, bench_settings.csv, frontier.csv.
# Entry points: run(params, tracker), chosen_model, write_settings_csv, write_frontier_csv.
import csv, math
from pathlib import Path
import pyarrow.parquet as pq
from hildanext.config import Params
from hildanext.data.loader import PackedShards
from hildanext.decode.engines import make_engine
from hildanext.eval import codeeval
from hildanext.eval.bench import (FRONTIER_KEYS, POINT_KEYS, ar_nll, bench_batches, bench_settings, choose_presets,
                                  elbo_nll, elbo_setup, openings)
from hildanext.eval.candidates import bench_candidates
from hildanext.eval.cost import forward_cost
from hildanext.files import write_json_atomic
from hildanext.model import ModelFolderError, peak_memory_mb
from hildanext.pipeline import paths
from hildanext.train.objective import regular_token_ids
FLOAT_KEYS = ("tpf", "tokens_per_s", "distinct_2", "repetition_4", "stop_share", "speed_vs_ar", "gen_ppl",
              "gen_ppl_vs_ar", "repetition_vs_ar")
def perplexity(params: Params, engine, ar) -> dict:
    b, shards = params.bench, PackedShards(paths.TOKENIZED, "eval", paths.INIT)
    count, tokenizer = min(len(shards), b.eval_rows), engine.tokenizer
    setup = elbo_setup(tokenizer.mask_token_id, regular_token_ids(tokenizer), engine.trained_block_size,
                       engine.info.shift)
    bd = elbo_nll(engine.model, shards, setup, b)
    plain = ar_nll(ar.model, shards, count)
    return {"bd_elbo_bound": math.exp(bd), "ar": math.exp(plain), "ratio": math.exp(bd - plain), "rows": count,
            "mc_samples": b.mc_samples}

def chosen_model(b, best: str | None) -> str:
    """bench.model, or with bench.model = best the best candidate folder."""
    if b.model != "best":
        return b.model
    if best is None:
        raise ModelFolderError(f"bench.model is best but none of bench.candidates {list(b.candidates)} exists")
    return best

def run(params: Params, tracker) -> dict:
    b = params.bench
    ar = make_engine("ar", Path(b.ar_model) if b.ar_model else paths.base_folder(params), params)
    texts = pq.read_table(paths.PROCESSED / "eval.parquet", columns=["text"]).column("text").to_pylist()
    prompts = openings(texts, ar.tokenizer, b.openings, b.opening_tokens)
    candidates, best = bench_candidates(params, ar, prompts, make_engine)
    model = chosen_model(b, best)
    engine = make_engine(b.engine, Path(model), params)
    rows, frontier = bench_settings(engine, ar, prompts, b)
    batch = bench_batches(engine, ar, prompts, b)
    query = engine.trained_block_size + int(engine.info.shift)
    cost = forward_cost(engine.model, ar.model, b.opening_tokens, query, b.cost_repeats)
    ppl, peak = perplexity(params, engine, ar), peak_memory_mb()
    report = {"model": model, "candidates": candidates, "best_candidate": best}
    report |= {"engine": engine.name, "device": str(engine.model.device), "peak_mem_mb": peak,
               "perplexity": ppl, "settings": rows, "prompts": len(prompts), "repeats": b.repeats, "cost": cost,
               "frontier": frontier, "batch": batch, "suggested_presets": choose_presets(frontier, b.s_max_ppl_ratio)}
    report["harness_self_test"] = codeeval.harness_self_test()["ok"] if b.code else None
    write_json_atomic(paths.metrics("bench"), report)
    write_settings_csv(paths.METRICS / "bench_settings.csv", rows)
    write_frontier_csv(paths.METRICS / "frontier.csv", frontier)
    log_tables(rows, frontier)
    log_presets(report["suggested_presets"])
    floats = {f"{name}/{k}": v for name, row in rows.items() for k, v in row.items() if isinstance(v, float)}
    costs = {f"cost/{k}": v for k, v in cost.items() if isinstance(v, float)}
    batches = {f"batch/{name}/{k}": v for name, row in batch.items() for k, v in row.items()}
    picks = {f"candidate/{Path(c).name}/{m}/{k}": v for c, row in candidates.items() for m, r in row.items()
             for k, v in r.items() if isinstance(v, float)}
    return {f"perplexity/{k}": v for k, v in ppl.items()} | floats | costs | batches | picks

def write_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows({k: row.get(k) for k in header} for row in rows)
    tmp.replace(path)

def write_settings_csv(path: Path, rows: dict) -> None:
    keys = sorted({k for row in rows.values() for k, v in row.items() if isinstance(v, float)})
    write_csv(path, ["setting", *keys], [{"setting": name} | row for name, row in rows.items()])

def write_frontier_csv(path: Path, frontier: list[dict]) -> None:
    """One row per frontier point (its series, taus, resolved policies) and one for AR (empty): the plots' data."""
    write_csv(path, [*POINT_KEYS, *FRONTIER_KEYS], frontier)

def log_tables(rows: dict, frontier: list[dict]) -> None:
    import mlflow
    if mlflow.active_run():
        table = {"setting": list(rows), **{k: [row.get(k) for row in rows.values()] for k in FLOAT_KEYS}}
        mlflow.log_table(table, "bench_settings.json")
        keys = [*POINT_KEYS, *FRONTIER_KEYS]
        mlflow.log_table({k: [row[k] for row in frontier] for k in keys}, "frontier.json")

def log_presets(suggested: dict) -> None:
    for name, p in suggested.items():
        print(f"bench: the frontier suggests {name} = {p['setting']} (series {p['series']}): TPF {p['tpf']:.2f}, "
              f"Gen PPL {p['gen_ppl']:.2f}")
