# Bench measures of a block-diffusion model against its AR base: an ELBO bound on perplexity over packed eval
# rows (M2T only, 1/t-weighted, fixed Monte Carlo seed) beside the AR perplexity, generations from held-out
# openings (active decode setting, S, Q, AR: TPF, tokens/s, distinct-2, repetition, stop share, speed vs AR)
# and micro HumanEval pass@1 per setting. Entry points: elbo_setup, elbo_nll, ar_nll, text_metrics, openings,
# run_setting, bench_settings (pipeline/bench.py runs the stage).
from dataclasses import replace
import torch
from hildanext.config import BenchParams, ObjectiveParams
from hildanext.data.loader import PackedShards
from hildanext.decode.engines import Request
from hildanext.eval import codeeval
from hildanext.model import masked_logits
from hildanext.train.masks import causal_doc_mask
from hildanext.train.objective import ObjectiveSetup, diffusion_loss
M2T_ONLY = ObjectiveParams(t2t_rate=0.0, keep_rate=0.0, embed_noise_std=0.0)
def elbo_setup(mask_id: int, regular_ids: torch.Tensor, block_size: int, shift: bool = False) -> ObjectiveSetup:
    """The NELBO's objective: M2T alone at block_size over the AR perplexity's tokens (those with a predecessor)."""
    return ObjectiveSetup(replace(M2T_ONLY, shift=shift), mask_id, regular_ids, block_size, predecessor_only=True)

@torch.no_grad()
def elbo_nll(model, shards: PackedShards, setup: ObjectiveSetup, b: BenchParams) -> float:
    """Nats per token of the NELBO (an upper bound on the NLL) on b.eval_rows rows, mean of b.mc_samples draws."""
    rows, gen = min(len(shards), b.eval_rows), torch.Generator().manual_seed(b.mc_seed)
    total, tokens = 0.0, 0
    for _ in range(b.mc_samples):
        for i in range(0, rows, 8):
            out = diffusion_loss(model, shards[i : min(i + 8, rows)], setup, gen)
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
        ce = torch.nn.functional.cross_entropy(logits[:, :-1][valid], x0[:, 1:].to(logits.device)[valid],
                                               reduction="sum")
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
    stops = sum(c.finish_reason == "stop" for c in completions)
    return {"tpf": tokens / max(sum(s.forwards for s in stats), 1), "tokens_per_s": tokens / max(seconds, 1e-9),
            "distinct_2": len(set(bigrams)) / max(len(bigrams), 1), "repetition_4": sum(repeats) / max(len(repeats), 1),
            "stop_share": stops / max(len(completions), 1)}

def openings(texts: list[str], tokenizer, count: int, length: int) -> list[str]:
    """The first `count` held-out texts with at least `length` tokens, cut to their first `length` tokens."""
    heads = [tokenizer(t, add_special_tokens=False)["input_ids"][:length] for t in texts[: count * 2]]
    return [tokenizer.decode(h) for h in heads if len(h) == length][:count]

def run_setting(engine, prompts: list[str], request: Request, code: bool) -> dict:
    done = [engine.complete(replace(request, prompt=p)) for p in prompts]
    row = text_metrics(done)
    if code:
        report = codeeval.evaluate(codeeval.complete_tasks(engine,
                                                           codeeval.code_request(request.mode, request.max_new_tokens)))
        row |= {"pass_at_1": float(report["pass@1"]), "code_isolation": report["isolation"]}
    return row

def bench_settings(engine, ar, prompts: list[str], b: BenchParams) -> dict:
    """One row of text metrics (and pass@1 when b.code) per setting: active, S, Q and the AR baseline."""
    base = Request("", max_new_tokens=b.max_new_tokens, seed=b.seed)
    modes = {"active": None, "S": "S", "Q": "Q", "ar": None}
    rows = {name: run_setting(ar if name == "ar" else engine, prompts, replace(base, mode=mode), b.code)
            for name, mode in modes.items()}
    for row in rows.values():
        row["speed_vs_ar"] = row["tokens_per_s"] / max(rows["ar"]["tokens_per_s"], 1e-9)
    return rows
