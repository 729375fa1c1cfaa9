# The bench stage's measures: the ELBO bound is reproducible for a fixed Monte Carlo seed and, on a model
# trained to predict nothing better than uniform, equals log(vocab) in expectation; the AR NLL and Gen PPL equal
# hand computations, the ELBO counts the AR perplexity's tokens (shift on or off) and Gen PPL ranks corpus text
# above its shuffle; text metrics (leaderboard TPF) match hand counts; settings with equal decode settings share
# one run; batch rows (run_batch vs one at a time) keep the batch-1 ids in float64 and their rates agree with
# the token counts; frontier CSV and plot; bench + export on ci overlay (candidate rows, export follows the pick).
import csv, importlib.util, json, math, shutil, statistics
from types import SimpleNamespace
import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_qwen3
from hildanext.config import BenchParams, DemoParams, Params, RuntimeParams, load_params
from hildanext.config.decode import FrontierPoint
from hildanext.data.demo_corpus import demo_stories
from hildanext.decode.engines import Request, make_engine
from hildanext.eval.bench import (FRONTIER_KEYS, ar_nll, bench_batches, bench_settings, distinct_runs, bench_requests,
                                  elbo_nll, elbo_setup, gen_ppl, text_metrics)
from hildanext.eval.cost import forward_cost, median_ms
from hildanext.pipeline.bench import write_frontier_csv
from hildanext.train.demo import build_demo_base
from hildanext.train.objective import diffusion_loss
class Rows:
    """PackedShards-like: rows of ids and doc ids."""
    def __init__(self, ids, doc_ids):
        self.ids, self.doc_ids = ids, doc_ids
    def __len__(self):
        return len(self.ids)
    def __getitem__(self, index):
        return self.ids[index], self.doc_ids[index]

def rows():
    ids = torch.randint(0, 100, (4, 16), generator=torch.Generator().manual_seed(0))
    doc_ids = torch.tensor([[0] * 10 + [1] * 6, [2] * 16, [3] * 5 + [-1] * 11, [4] * 8 + [5] * 8])
    return Rows(ids, doc_ids)

def test_elbo_bound_is_reproducible_and_uniform_model_gives_log_vocab():
    model = make_tiny_qwen3(vocab_size=128, seed=2)
    setup = elbo_setup(127, torch.arange(120), 4)
    first, again = (elbo_nll(model, rows(), setup, BenchParams(eval_rows=4, mc_samples=3, mc_seed=7)) for _ in range(2))
    assert first == again and first > 0
    with torch.no_grad():
        model.lm_head.weight.zero_()
    uniform = elbo_nll(model, rows(), setup, BenchParams(eval_rows=4, mc_samples=50, mc_seed=1))
    assert uniform == pytest.approx(math.log(128), rel=0.1)

def test_ar_nll_matches_a_hand_computation():
    model, data = make_tiny_qwen3(vocab_size=128, seed=3), rows()
    total, count = 0.0, 0
    for ids, docs in zip(data.ids, data.doc_ids, strict=True):
        for doc in docs.unique():
            if doc < 0:
                continue
            seq = ids[docs == doc]
            with torch.no_grad():
                logits = model(input_ids=seq[None]).logits[0]
            total += float(F.cross_entropy(logits[:-1], seq[1:], reduction="sum"))
            count += len(seq) - 1
    assert ar_nll(model, data, 4) == pytest.approx(total / count, rel=1e-4)

def test_gen_ppl_matches_a_hand_computation():
    model = make_tiny_qwen3(vocab_size=128, seed=4)
    prompts, continuations = [[5, 9, 2], [7], [3, 3]], [[11, 4, 127], [8, 8, 8, 1, 6], []]
    nll, count = 0.0, 0
    for prompt, continuation in zip(prompts, continuations, strict=True):
        seq = torch.tensor(prompt + continuation)
        with torch.no_grad():
            logp = model(input_ids=seq[None]).logits[0].double().log_softmax(-1)
        for i in range(len(prompt), len(seq)):
            nll, count = nll - float(logp[i - 1, seq[i]]), count + 1
    assert gen_ppl(model, prompts, continuations) == pytest.approx(math.exp(nll / count), rel=1e-5)
    without_last = gen_ppl(model, prompts, [[11, 4], *continuations[1:]])
    assert without_last != pytest.approx(gen_ppl(model, prompts, continuations), rel=1e-6)
    with pytest.raises(ValueError):
        gen_ppl(model, [[]], [[1]])

def test_gen_ppl_ranks_corpus_continuations_above_the_same_tokens_shuffled():
    p = DemoParams(stories=200, vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                   num_kv_heads=1, head_dim=16, seq_len=32, batch_size=4, steps=150, warmup_steps=2)
    model, tokenizer, _ = build_demo_base(demo_stories(p.stories, p.seed), p, 0, lambda metrics, step: None)
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in demo_stories(20, 99)]
    ids = [i for i in ids if len(i) >= 40][:8]
    prompts, real = [i[:8] for i in ids], [i[8:40] for i in ids]
    order = torch.randperm(32, generator=torch.Generator().manual_seed(0)).tolist()
    shuffled = [[c[j] for j in order] for c in real]
    assert len(ids) == 8 and gen_ppl(model.eval(), prompts, real) < 0.8 * gen_ppl(model, prompts, shuffled)

@pytest.mark.parametrize("shift", [False, True])
def test_elbo_counts_the_tokens_the_ar_perplexity_scores(shift):
    model, data = make_tiny_qwen3(vocab_size=128, seed=3), rows()
    ar_tokens = sum(int((docs == doc).sum()) - 1 for docs in data.doc_ids for doc in docs.unique() if doc >= 0)
    setup = elbo_setup(127, torch.arange(120), 4, shift)
    with torch.no_grad():
        out = diffusion_loss(model, data[0:4], setup, torch.Generator().manual_seed(0), fixed_t=1.0)
    assert setup.objective.shift == shift and out.tokens == out.masked == ar_tokens == 9 + 5 + 15 + 4 + 7 + 7

def completion(ids, finish="length", forwards=2, seconds=0.5, refreshes=0):
    stats = SimpleNamespace(forwards=forwards, tokens=len(ids), seconds=seconds, cache_forwards=refreshes)
    return SimpleNamespace(ids=ids, finish_reason=finish, result=SimpleNamespace(stats=stats))

def test_text_metrics_match_hand_counts():
    out = text_metrics([completion([1, 2, 1, 2, 1, 2], "stop"), completion([5, 6, 7, 8], refreshes=1)])
    assert out["tpf"] == pytest.approx(10 / 5) and out["tokens_per_s"] == pytest.approx(10 / 1.0)
    assert out["distinct_2"] == pytest.approx(5 / 8) and out["stop_share"] == 0.5
    assert out["repetition_4"] == pytest.approx((1 - 2 / 3 + 0) / 2)

def test_equal_decode_settings_share_one_run(model_dir):
    engine = make_engine("diffusion", model_dir, Params())
    points = (FrontierPoint(0.5, 0.0), FrontierPoint(0.7, 0.5), FrontierPoint(0.9, 1.0))
    first = distinct_runs(engine, bench_requests(BenchParams(frontier=points)))
    assert first == {"active": "active", "S": "active", "Q": "Q", "mask0.5_edit0": "active", "mask0.7_edit0.5": "Q",
                     "mask0.9_edit1": "mask0.9_edit1"}

def test_bench_settings_rows_frontier_and_gen_ppl_of_greedy_continuations(model_dir):
    engine, ar, prompts = make_engine("diffusion", model_dir, Params()), make_engine("ar", model_dir, Params()), [
        "Once upon a time", "The cat sat"]
    b = BenchParams(openings=2, max_new_tokens=8, code=False, repeats=2,
                    frontier=(FrontierPoint(0.5, 0.0), FrontierPoint(0.9, 1.0)))
    rows, frontier = bench_settings(engine, ar, prompts, b)
    assert set(rows) == {"active", "S", "Q", "ar"} and rows["active"] == rows["S"]
    assert [r["setting"] for r in frontier] == ["mask0.5_edit0", "mask0.9_edit1", "ar"]
    assert {k: frontier[0][k] for k in FRONTIER_KEYS} == {k: rows["S"][k] for k in FRONTIER_KEYS}
    for row in rows.values():
        assert len(row["tokens_per_s_repeats"]) == 2
        assert row["tokens_per_s"] == statistics.median(row["tokens_per_s_repeats"])
    assert rows["ar"]["tpf"] == rows["ar"]["speed_vs_ar"] == rows["ar"]["gen_ppl_vs_ar"] == 1.0
    for name, runner, mode in (("Q", engine, "Q"), ("ar", ar, None)):
        done = [runner.prepare(Request(prompt=p, mode=mode, max_new_tokens=8, temperature=0.0)) for p in prompts]
        ids = [runner.run(p).ids for p in done]
        expected = gen_ppl(ar.model, [p.prompt_ids for p in done], ids)
        assert rows[name]["gen_ppl"] == pytest.approx(expected)
    assert rows["Q"]["gen_ppl_vs_ar"] == pytest.approx(rows["Q"]["gen_ppl"] / rows["ar"]["gen_ppl"])

def test_forward_cost_reports_both_times_and_their_ratio(model_dir):
    calls = []
    assert median_ms(lambda: calls.append(1), 5) >= 0 and len(calls) == 6
    model = make_engine("diffusion", model_dir, Params()).model
    cost = forward_cost(model, model, 16, 8, 3)
    assert cost["block_forward_ms"] > 0 and cost["ar_step_ms"] > 0
    assert cost["parity_tpf"] == pytest.approx(cost["block_forward_ms"] / cost["ar_step_ms"])

def test_frontier_csv_and_plot(tmp_path, repo_root):
    rows = [{"setting": "mask0.9_edit1", "tau_mask": 0.9, "tau_edit": 1.0} | {k: 2.0 for k in FRONTIER_KEYS},
            {"setting": "ar", "tau_mask": None, "tau_edit": None} | {k: 1.0 for k in FRONTIER_KEYS}]
    write_frontier_csv(tmp_path / "frontier.csv", rows)
    read = list(csv.DictReader((tmp_path / "frontier.csv").read_text().splitlines()))
    assert [r["setting"] for r in read] == ["mask0.9_edit1", "ar"] and read[1]["tau_edit"] == ""
    assert float(read[0]["gen_ppl"]) == 2.0 and not (tmp_path / "frontier.tmp").exists()
    spec = importlib.util.spec_from_file_location("plot_frontier", repo_root / "benchmarks/plot_frontier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    png = module.plot_frontier(tmp_path / "frontier.csv", tmp_path / "docs/frontier.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000

@pytest.mark.slow
def test_bench_stage_on_the_ci_overlay(tmp_path, repo_root, monkeypatch):
    from hildanext.config import merge_overlay
    from hildanext.pipeline import run_stage
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    merge_overlay(tmp_path / "params.yaml", repo_root / "overlays/ci.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    for stage in ("demo_base", "init", "prepare", "tokenize", "sft_data", "wsd", "merge", "sft"):
        run_stage(stage)
    metrics = run_stage("bench", "params.yaml", ["bench.code=true"])
    report = json.loads((tmp_path / "metrics/bench.json").read_text())
    assert set(report["settings"]) == {"active", "S", "Q", "ar"} and report["harness_self_test"] is True
    assert (report["perplexity"]["bd_elbo_bound"] > 1 and report["perplexity"]["ar"] > 1
            and "perplexity/ratio" in metrics)
    assert all(0 <= row["pass_at_1"] <= 1 and row["tpf"] > 0 and row["gen_ppl"] > 1
               for row in report["settings"].values())
    assert report["cost"]["parity_tpf"] > 0 and [r["setting"] for r in report["frontier"]][-1] == "ar"
    assert set(report["batch"]) == {"active", "ar"} and metrics["batch/ar/requests"] == 2
    assert (tmp_path / "metrics/bench_settings.csv").read_text().startswith("setting,")
    assert (tmp_path / "metrics/frontier.csv").read_text().startswith("setting,series,tau_mask,tau_edit,stop_in_block,")
    presets = report["suggested_presets"]
    assert set(presets) == {"S", "Q"} and presets["Q"]["gen_ppl"] <= presets["S"]["gen_ppl"]
    run_stage("export")
    meta = json.loads((tmp_path / "models/export/hildanext.json").read_text())
    chosen = load_params(tmp_path / "params.yaml").decode
    assert (meta["stage"] == "export" and meta["decode"]["tau_mask"] == chosen.tau_mask
            and meta["decode"]["fallback"] == chosen.fallback and meta["bench"]["perplexity"] == report["perplexity"])
    card = (tmp_path / "models/export/README.md").read_text()
    assert ("| S |" in card and "hildanext generate --model models/export" in card
            and (tmp_path / "models/export/model.safetensors").exists())
    assert set(report["candidates"]) == {"models/merged", "models/sft"} == {report["model"], *report["candidates"]}
    assert report["model"] == report["best_candidate"] == meta["source"] and report["candidates"][meta["source"]]["Q"]

def test_batch_rows_equal_batch_one_ids_in_float64_and_their_rates_agree(model_dir):
    params = Params(runtime=RuntimeParams(dtype="float64"))
    engine, ar = make_engine("diffusion", model_dir, params), make_engine("ar", model_dir, params)
    prompts = ["Once upon a time", "The cat sat", "A little dog ran to the park and", "Tom"]
    b = BenchParams(max_new_tokens=12, repeats=1, batch_size=3)
    batch = bench_batches(engine, ar, prompts, b)
    assert set(batch) == {"active", "ar"} and engine.model.dtype == torch.float64
    for name, runner in (("active", engine), ("ar", ar)):
        row = batch[name]
        mode = "S" if name == "active" else None
        requests = [Request(prompt=p, mode=mode, max_new_tokens=12, temperature=0.0) for p in prompts]
        done = [runner.run(runner.prepare(r)) for r in requests]
        tokens = sum(len(c.ids) for c in done)
        assert row["ids_differ"] == 0 and row["requests"] == 4 and row["batch_size"] == 3
        assert row["tokens_per_s"] / row["requests_per_s"] == pytest.approx(tokens / 4)
        assert row["batch1_tokens_per_s"] / row["batch1_requests_per_s"] == pytest.approx(tokens / 4)
        assert row["tokens_per_s_vs_batch1"] == pytest.approx(row["tokens_per_s"] / row["batch1_tokens_per_s"])
