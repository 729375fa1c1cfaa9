# The bench stage (`hildanext bench`): bench.model (default models/sft) against the AR base (bench.ar_model or
# the base folder): ELBO perplexity bound vs AR perplexity on data/tokenized's eval split, generations from
# data/processed's held-out openings per setting (active, S, Q, AR) and micro HumanEval pass@1; writes
# metrics/bench.json and metrics/bench_settings.csv. Entry points: run(params, tracker), write_settings_csv.
import csv, math
from pathlib import Path
import pyarrow.parquet as pq
from hildanext.config import Params
from hildanext.data.loader import PackedShards
from hildanext.decode.engines import make_engine
from hildanext.eval import codeeval
from hildanext.eval.bench import ar_nll, bench_settings, elbo_nll, elbo_setup, openings
from hildanext.files import write_json_atomic
from hildanext.model import peak_memory_mb
from hildanext.pipeline import paths
from hildanext.train.objective import regular_token_ids
FLOAT_KEYS = ("tpf", "tokens_per_s", "distinct_2", "repetition_4", "stop_share", "speed_vs_ar")
def perplexity(params: Params, engine, ar) -> dict:
    b, shards = params.bench, PackedShards(paths.TOKENIZED, "eval", paths.INIT)
    count, tokenizer = min(len(shards), b.eval_rows), engine.tokenizer
    setup = elbo_setup(tokenizer.mask_token_id, regular_token_ids(tokenizer), engine.trained_block_size)
    bd = elbo_nll(engine.model, shards, setup, b)
    plain = ar_nll(ar.model, shards, count)
    return {"bd_elbo_bound": math.exp(bd), "ar": math.exp(plain), "ratio": math.exp(bd - plain), "rows": count,
            "mc_samples": b.mc_samples}

def run(params: Params, tracker) -> dict:
    b = params.bench
    engine = make_engine(b.engine, Path(b.model), params)
    ar = make_engine("ar", Path(b.ar_model) if b.ar_model else paths.base_folder(params), params)
    texts = pq.read_table(paths.PROCESSED / "eval.parquet", columns=["text"]).column("text").to_pylist()
    prompts = openings(texts, engine.tokenizer, b.openings, b.opening_tokens)
    rows = bench_settings(engine, ar, prompts, b)
    ppl, peak = perplexity(params, engine, ar), peak_memory_mb()
    report = {"model": b.model, "engine": engine.name, "device": str(engine.model.device), "peak_mem_mb": peak,
              "perplexity": ppl, "settings": rows, "prompts": len(prompts)}
    report["harness_self_test"] = codeeval.harness_self_test()["ok"] if b.code else None
    write_json_atomic(paths.metrics("bench"), report)
    write_settings_csv(paths.METRICS / "bench_settings.csv", rows)
    log_tables(rows)
    floats = {f"{name}/{k}": v for name, row in rows.items() for k, v in row.items() if isinstance(v, float)}
    return {f"perplexity/{k}": v for k, v in ppl.items()} | floats

def write_settings_csv(path: Path, rows: dict) -> None:
    keys = sorted({k for row in rows.values() for k, v in row.items() if isinstance(v, float)})
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, ["setting", *keys])
        writer.writeheader()
        writer.writerows({"setting": name} | {k: row.get(k) for k in keys} for name, row in rows.items())
    tmp.replace(path)

def log_tables(rows: dict) -> None:
    import mlflow
    if mlflow.active_run():
        table = {"setting": list(rows), **{k: [row.get(k) for row in rows.values()] for k in FLOAT_KEYS}}
        mlflow.log_table(table, "bench_settings.json")
