# Bench measures of a block-diffusion model against its AR base: an ELBO bound on perplexity over packed eval
# rows (M2T only, 1/t-weighted, fixed Monte Carlo seed) beside the AR perplexity, greedy generations from held-out
# openings per setting (active, S, Q, each frontier point with its policies and series, AR; equal settings run once):
# TPF, tokens/s, Gen PPL under the AR base, distinct-2, repetition, stop share, ratios to AR, pass@1; batch rows.
# Entry points: elbo_setup, elbo_nll, ar_nll, gen_ppl, text_metrics, openings, bench_requests, bench_settings,
# choose_presets (S and Q from the frontier), bench_batches (pipeline/bench.py runs the stage).
import math, statistics, time
from dataclasses import replace
import torch
from hildanext.config import BenchParams, ObjectiveParams
from hildanext.config.decode import POINT_KNOBS, FrontierPoint
from hildanext.data.loader import PackedShards
from hildanext.decode.decoder import tokens_per_forward
from hildanext.decode.engines import Request
from hildanext.eval import codeeval
from hildanext.model import masked_logits
from hildanext.train.masks import causal_doc_mask
from hildanext.train.objective import ObjectiveSetup, diffusion_loss
NAMED = {"active": None, "S": "S", "Q": "Q"}
FRONTIER_KEYS = ("tpf", "tokens_per_s", "speed_vs_ar", "gen_ppl", "gen_ppl_vs_ar", "distinct_2", "repetition_4",
                 "repetition_vs_ar", "stop_share")
POINT_KEYS = ("setting", "series", "tau_mask", "tau_edit", *POINT_KNOBS)
TAGS = {"exact": ("exact", "noexact"), "stop_in_block": ("stop", "nostop"), "carry_next": ("carry", "nocarry")}
def elbo_setup(mask_id: int, regular_ids: torch.Tensor, block_size: int, shift: bool = False) -> ObjectiveSetup:
    """The NELBO's objective: M2T alone at block_size over the AR perplexity's tokens (those with a predecessor)."""
    setup = ObjectiveSetup(ObjectiveParams(shift=shift), mask_id, regular_ids, block_size, predecessor_only=True)
    return setup.m2t_only()

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

@torch.no_grad()
def gen_ppl(ar_model, prompt_ids_list, continuation_ids_list) -> float:
    """exp of the token-weighted mean NLL of each continuation (its stop token included) given its prompt."""
    total, count = 0.0, 0
    for prompt, continuation in zip(prompt_ids_list, continuation_ids_list, strict=True):
        if not prompt:
            raise ValueError("gen_ppl: an empty prompt leaves the first continuation token without context")
        if not continuation:
            continue
        ids = torch.tensor([[*prompt, *continuation]], device=ar_model.device)
        logits = ar_model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
        total += float(torch.nn.functional.cross_entropy(logits, ids[0, len(prompt) :], reduction="sum"))
        count += len(continuation)
    if count == 0:
        raise ValueError("gen_ppl: no continuation tokens to score")
    return math.exp(total / count)

def ngrams(ids: list[int], n: int) -> list[tuple]:
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]

def text_metrics(completions) -> dict:
    """TPF (refreshes in), tokens/s, distinct-2 over all answers, mean repeated 4-gram share, share ending in a stop."""
    stats = [c.result.stats for c in completions]
    bigrams = [g for c in completions for g in ngrams(c.ids, 2)]
    repeats = [1 - len(set(grams)) / len(grams) for c in completions if (grams := ngrams(c.ids, 4))]
    seconds, tokens = sum(s.seconds for s in stats), sum(s.tokens for s in stats)
    stops = sum(c.finish_reason == "stop" for c in completions)
    forwards = sum(s.forwards + s.cache_forwards for s in stats)
    return {"tpf": tokens_per_forward(tokens, forwards), "tokens_per_s": tokens / max(seconds, 1e-9),
            "distinct_2": len(set(bigrams)) / max(len(bigrams), 1), "repetition_4": sum(repeats) / max(len(repeats), 1),
            "stop_share": stops / max(len(completions), 1)}

def openings(texts: list[str], tokenizer, count: int, length: int) -> list[str]:
    """The first `count` held-out texts with at least `length` tokens, cut to their first `length` tokens."""
    heads = [tokenizer(t, add_special_tokens=False)["input_ids"][:length] for t in texts[: count * 2]]
    return [tokenizer.decode(h) for h in heads if len(h) == length][:count]

def point_tags(point: FrontierPoint) -> list[str]:
    """Short tags of the params a point sets, in field order (exact, policies): unique per value."""
    names = ("exact", *POINT_KNOBS)
    values = {name: getattr(point, name) for name in names if getattr(point, name) is not None}
    short = {"sub_block": "sub", "max_post_steps": "post"}
    return [TAGS[k][not v] if k in TAGS else f"{short[k]}{v}" if k in short else v for k, v in values.items()]

def point_name(point: FrontierPoint) -> str:
    return "_".join([f"mask{point.tau_mask:g}", f"edit{point.tau_edit:g}", *point_tags(point)])

def series_name(point: FrontierPoint) -> str:
    """The point's series label, else "official" (exact), "active" (sets nothing) or its tags."""
    return point.series or ("official" if point.exact else "+".join(point_tags(point)) or "active")

def point_policies(point: FrontierPoint) -> dict:
    """The decode params a point sets; a point that sets policies but not exact turns exact off (else ignored)."""
    policies = {name: getattr(point, name) for name in POINT_KNOBS if getattr(point, name) is not None}
    exact = False if policies and point.exact is None else point.exact
    return policies | ({} if exact is None else {"exact": exact})

def bench_requests(b: BenchParams) -> dict[str, Request]:
    """Greedy requests of the named settings (active, S, Q), then one per frontier point (its taus and policies)."""
    base = Request(prompt="", mode=None, max_new_tokens=b.max_new_tokens, seed=b.seed, temperature=0.0)
    named = {name: replace(base, mode=mode) for name, mode in NAMED.items()}
    points = {point_name(p): replace(base, tau_mask=p.tau_mask, tau_edit=p.tau_edit, policies=point_policies(p))
              for p in b.frontier}
    return named | points

def distinct_runs(engine, requests: dict[str, Request]) -> dict[str, str]:
    """For each name, the first name whose request resolves to the same decode settings (each runs once)."""
    seen, first = [], {}
    for name, request in requests.items():
        settings = engine.resolve(request)
        first[name] = next((n for n, s in seen if s == settings), name)
        seen += [(name, settings)] if first[name] == name else []
    return first

def interleaved(jobs: dict, repeats: int, counts: dict | None = None) -> dict[str, list[list]]:
    """Each job's completions per repeat (counts[name], else repeats), interleaved, after one warm-up each."""
    for engine, prepared in jobs.values():
        engine.run(prepared[0])
    runs, counts = {name: [] for name in jobs}, counts or {}
    for repeat in range(max([repeats, *counts.values()])):
        for name, (engine, prepared) in jobs.items():
            if repeat < counts.get(name, repeats):
                runs[name].append([engine.run(p) for p in prepared])
    return runs

def measured_row(repeats: list[list], prepared, ar_model) -> dict:
    """Quality from the first repeat (greedy decoding repeats itself), tokens/s the median over repeats."""
    speeds = [text_metrics(done)["tokens_per_s"] for done in repeats]
    row = text_metrics(repeats[0]) | {"tokens_per_s": statistics.median(speeds), "tokens_per_s_repeats": speeds}
    return row | {"gen_ppl": gen_ppl(ar_model, [p.prompt_ids for p in prepared], [c.ids for c in repeats[0]])}

def code_row(engine, request: Request) -> dict:
    tasks = codeeval.complete_tasks(engine, codeeval.code_request(request.mode, request.max_new_tokens))
    report = codeeval.evaluate(tasks)
    return {"pass_at_1": float(report["pass@1"]), "code_isolation": report["isolation"]}

def vs_ar(row: dict, ar: dict) -> dict:
    """speed, Gen PPL and repetition relative to the AR row (None where the AR value is 0)."""
    ratios = {"speed_vs_ar": "tokens_per_s", "gen_ppl_vs_ar": "gen_ppl", "repetition_vs_ar": "repetition_4"}
    return row | {k: row[key] / ar[key] if ar[key] else None for k, key in ratios.items()}

def prepared_jobs(engine, ar, requests: dict[str, Request], names, prompts: list[str]) -> dict:
    """name -> (its engine, its request prepared for each prompt); "ar" runs on the AR engine."""
    jobs = {}
    for name in names:
        runner = ar if name == "ar" else engine
        jobs[name] = runner, [runner.prepare(replace(requests[name], prompt=p)) for p in prompts]
    return jobs

def bench_settings(engine, ar, prompts: list[str], b: BenchParams) -> tuple[dict, list[dict]]:
    """Rows per named setting and AR (pass@1 when b.code) and the frontier rows (each point, then AR)."""
    requests = bench_requests(b)
    first = distinct_runs(engine, requests) | {"ar": "ar"}
    jobs = prepared_jobs(engine, ar, requests | {"ar": requests["active"]}, dict.fromkeys(first.values()), prompts)
    named = {first[n] for n in (*NAMED, "ar")}
    runs = interleaved(jobs, b.repeats, {name: b.frontier_repeats for name in jobs if name not in named})
    measured = {name: measured_row(runs[name], jobs[name][1], ar.model) for name in jobs}
    if b.code:
        for name in dict.fromkeys(first[n] for n in (*NAMED, "ar")):
            measured[name] |= code_row(jobs[name][0], requests.get(name, requests["active"]))
    ratios = {name: vs_ar(row, measured["ar"]) for name, row in measured.items()}
    rows = {name: ratios[first[name]] for name in (*NAMED, "ar")}
    points = [point_row(p, engine.resolve(requests[point_name(p)])) for p in b.frontier]
    points += [dict.fromkeys(POINT_KEYS) | {"setting": "ar", "series": "ar"}]
    return rows, [p | {k: ratios[first[p["setting"]]][k] for k in FRONTIER_KEYS} for p in points]

def point_row(point: FrontierPoint, settings) -> dict:
    """A frontier row's point columns: its name, series, taus and the policies it resolved to."""
    resolved = {name: getattr(settings, name) for name in POINT_KNOBS}
    return {"setting": point_name(point), "series": series_name(point), "tau_mask": point.tau_mask,
            "tau_edit": point.tau_edit} | resolved

def choose_presets(frontier: list[dict], max_ppl_ratio: float) -> dict[str, dict]:
    """Q: the lowest Gen PPL (ties: higher TPF); S: the highest TPF at Gen PPL <= max_ppl_ratio x Q's."""
    points = [r for r in frontier if r["setting"] != "ar" and r["gen_ppl"] is not None and math.isfinite(r["gen_ppl"])]
    if not points:
        return {}
    q = min(points, key=lambda r: (r["gen_ppl"], -r["tpf"]))
    near = [r for r in points if r["gen_ppl"] <= max_ppl_ratio * q["gen_ppl"]]
    s = max(near, key=lambda r: (r["tpf"], -r["gen_ppl"]))
    return {name: preset_view(row) for name, row in (("S", s), ("Q", q))}

def preset_view(row: dict) -> dict:
    policies = {name: row.get(name) for name in POINT_KNOBS}
    return {k: row[k] for k in ("setting", "series", "tau_mask", "tau_edit", "tpf", "gen_ppl")} | {"policies": policies}

def timed(run) -> tuple[list, float]:
    started = time.perf_counter()
    done = run()
    return done, time.perf_counter() - started

def batch_row(engine, prepared: list, size: int, repeats: int) -> dict:
    """Batch 1 vs run_batch(max_rows=size): rates of the median wall time over repeats, rows whose ids differ."""
    engine.run_batch(prepared[:size], max_rows=size)
    single, batched = [], []
    for _ in range(repeats):
        single.append(timed(lambda: [engine.run(p) for p in prepared]))
        batched.append(timed(lambda: engine.run_batch(prepared, max_rows=size)))
    one, many = statistics.median(t for _, t in single), statistics.median(t for _, t in batched)
    tokens_one, tokens_many = (sum(len(c.ids) for c in runs[0][0]) for runs in (single, batched))
    rates = {"batch1_tokens_per_s": tokens_one / one, "batch1_requests_per_s": len(prepared) / one,
             "tokens_per_s": tokens_many / many, "requests_per_s": len(prepared) / many}
    differ = sum(a.ids != b.ids for a, b in zip(single[0][0], batched[0][0], strict=True))
    return {"batch_size": size, "requests": len(prepared), "ids_differ": differ} | rates | {
        "tokens_per_s_vs_batch1": rates["tokens_per_s"] / max(rates["batch1_tokens_per_s"], 1e-9)}

def bench_batches(engine, ar, prompts: list[str], b: BenchParams) -> dict[str, dict]:
    """Batch rows of the active setting on the converted model and on the AR base, at batch b.batch_size."""
    request = bench_requests(b)["active"]
    runners = {"active": engine, "ar": ar}
    jobs = {name: [r.prepare(replace(request, prompt=p)) for p in prompts] for name, r in runners.items()}
    return {name: batch_row(runners[name], jobs[name], b.batch_size, b.repeats) for name in runners}
