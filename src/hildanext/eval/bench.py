# The bench stage (`hildanext bench`): on bench.model (default models/sft) against the AR base. It measures
# an ELBO bound on perplexity over the tokenized eval split (M2T only, 1/t-weighted, fixed Monte Carlo seed)
# beside the AR perplexity, generations from held-out openings (active decode setting, S, Q, AR: TPF,
# tokens/s, distinct-2, repetition, stop share, speed vs AR) and micro HumanEval pass@1 per setting.
# Writes metrics/bench.json and metrics/bench_settings.csv. Entry points: elbo_nll, ar_nll, text_metrics, bench_stage.
import csv, math
from dataclasses import replace
from pathlib import Path
import pyarrow.parquet as pq
import torch
from hildanext.eval import codeeval
from hildanext.config import ObjectiveParams, Params
from hildanext.data.loader import PackedShards
from hildanext.decode.engines import Request, make_engine
from hildanext.files import write_json_atomic
from hildanext.train.masks import causal_doc_mask
from hildanext.model import base_folder, masked_logits
from hildanext.train.objective import diffusion_loss, regular_token_ids
from hildanext.train.loop import peak_memory_mb
@torch.no_grad()
def elbo_nll(model, shards: PackedShards, rows: int, block_size: int, mask_id: int, regular, samples: int, seed: int) -> float:
    """Nats per token of the block-diffusion NELBO (an upper bound on the NLL), averaged over MC samples."""
    p, gen, total, tokens = ObjectiveParams(t2t_rate=0.0, keep_rate=0.0, embed_noise_std=0.0), torch.Generator().manual_seed(seed), 0.0, 0
    for _ in range(samples):
        for i in range(0, rows, 8):
            out = diffusion_loss(model, *shards[i : min(i + 8, rows)], block_size, p, mask_id, regular, gen)
            total, tokens = total + out.loss_m2t * out.tokens, tokens + out.tokens
    return total / max(tokens, 1)

@torch.no_grad()
def ar_nll(model, shards: PackedShards, rows: int) -> float:
    """Nats per token of the causal model on the same rows (every token after its document's first)."""
    total, count = 0.0, 0
    for i in range(0, rows, 8):
        x0, doc_ids = shards[i : min(i + 8, rows)]
        logits = masked_logits(model, x0.to(model.device), causal_doc_mask(doc_ids)).float()
        valid = ((doc_ids[:, 1:] == doc_ids[:, :-1]) & (doc_ids[:, 1:] >= 0)).to(logits.device)
        ce = torch.nn.functional.cross_entropy(logits[:, :-1][valid], x0[:, 1:].to(logits.device)[valid], reduction="sum")
        total, count = total + float(ce), count + int(valid.sum())
    return total / max(count, 1)

def ngrams(ids: list[int], n: int) -> list[tuple]:
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]

def text_metrics(completions) -> dict:
    """TPF, tokens/s, distinct-2 over all answers, mean share of repeated 4-grams, share ending in a stop."""
    stats = [c.result.stats for c in completions]
    bigrams = [g for c in completions for g in ngrams(c.ids, 2)]
    repeats = [1 - len(set(grams)) / len(grams) for c in completions if (grams := ngrams(c.ids, 4))]
    seconds, tokens = sum(s.seconds for s in stats), sum(s.tokens for s in stats)
    return {"tpf": tokens / max(sum(s.forwards for s in stats), 1), "tokens_per_s": tokens / max(seconds, 1e-9), "distinct_2": len(set(bigrams)) / max(len(bigrams), 1),
            "repetition_4": sum(repeats) / max(len(repeats), 1), "stop_share": sum(c.finish_reason == "stop" for c in completions) / max(len(completions), 1)}

def openings(root: Path, tokenizer, count: int, length: int) -> list[str]:
    texts = pq.read_table(root / "data/processed/eval.parquet", columns=["text"]).column("text").to_pylist()
    heads = [tokenizer(t, add_special_tokens=False)["input_ids"][:length] for t in texts[: count * 2]]
    return [tokenizer.decode(h) for h in heads if len(h) == length][:count]

def run_setting(engine, prompts: list[str], request: Request, code: bool) -> dict:
    done = [engine.complete(replace(request, prompt=p)) for p in prompts]
    row = text_metrics(done)
    if code:
        report = codeeval.evaluate(codeeval.complete_tasks(engine, codeeval.code_request(request.mode, request.max_new_tokens)))
        row |= {"pass_at_1": float(report["pass@1"]), "code_isolation": report["isolation"]}
    return row

def bench_settings(params: Params, root: Path) -> tuple[dict, dict, object]:
    b = params.bench
    engine = make_engine(b.engine, root / b.model, params)
    ar = make_engine("ar", Path(b.ar_model) if b.ar_model else base_folder(params, root), params)
    prompts = openings(root, engine.tokenizer, b.openings, b.opening_tokens)
    base = Request("", max_new_tokens=b.max_new_tokens, seed=b.seed)
    requests = {"active": replace(base, mode=None), "S": replace(base, mode="S"), "Q": replace(base, mode="Q"), "ar": replace(base, mode=None)}
    rows = {name: run_setting(ar if name == "ar" else engine, prompts, req, b.code) for name, req in requests.items()}
    for row in rows.values():
        row["speed_vs_ar"] = row["tokens_per_s"] / max(rows["ar"]["tokens_per_s"], 1e-9)
    return rows, {"prompts": len(prompts)}, (engine, ar)

def bench_stage(params: Params, root: Path, tracker) -> dict:
    b = params.bench
    rows, info, (engine, ar) = bench_settings(params, root)
    shards = PackedShards(root / "data/tokenized", "eval", root / "models/init")
    count = min(len(shards), b.eval_rows)
    bd = elbo_nll(engine.model, shards, count, engine.trained_block_size, engine.tokenizer.mask_token_id, regular_token_ids(engine.tokenizer), b.mc_samples, b.mc_seed)
    plain = ar_nll(ar.model, shards, count)
    perplexity = {"bd_elbo_bound": math.exp(bd), "ar": math.exp(plain), "ratio": math.exp(bd - plain), "rows": count, "mc_samples": b.mc_samples}
    report = {"model": b.model, "engine": engine.name, "device": str(engine.model.device), "peak_mem_mb": peak_memory_mb(), "perplexity": perplexity, "settings": rows, "harness_self_test": codeeval.harness_self_test()["ok"] if b.code else None} | info
    write_json_atomic(root / "metrics/bench.json", report)
    write_settings_csv(root / "metrics/bench_settings.csv", rows)
    log_tables(rows)
    return {f"perplexity/{k}": v for k, v in perplexity.items()} | {f"{name}/{k}": v for name, row in rows.items() for k, v in row.items() if isinstance(v, float)}

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
        mlflow.log_table({"setting": list(rows), **{k: [row.get(k) for row in rows.values()] for k in ("tpf", "tokens_per_s", "distinct_2", "repetition_4", "stop_share", "speed_vs_ar")}}, "bench_settings.json")
