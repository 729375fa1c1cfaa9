# The bench stage's measures: the ELBO bound is reproducible for a fixed Monte Carlo seed and, on a model
# trained to predict nothing better than uniform, equals log(vocab) in expectation; the AR NLL equals a hand
# computation over in-document next tokens and the ELBO counts the same tokens (shift on or off); text
# metrics match hand counts; bench and export run on the ci overlay.
import json, math, shutil
from types import SimpleNamespace
import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_qwen3
from hildanext.config import BenchParams
from hildanext.eval.bench import ar_nll, elbo_nll, elbo_setup, text_metrics
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

@pytest.mark.parametrize("shift", [False, True])
def test_elbo_counts_the_tokens_the_ar_perplexity_scores(shift):
    model, data = make_tiny_qwen3(vocab_size=128, seed=3), rows()
    ar_tokens = sum(int((docs == doc).sum()) - 1 for docs in data.doc_ids for doc in docs.unique() if doc >= 0)
    setup = elbo_setup(127, torch.arange(120), 4, shift)
    with torch.no_grad():
        out = diffusion_loss(model, data[0:4], setup, torch.Generator().manual_seed(0), fixed_t=1.0)
    assert setup.objective.shift == shift and out.tokens == out.masked == ar_tokens == 9 + 5 + 15 + 4 + 7 + 7

def completion(ids, finish="length", forwards=2, seconds=0.5):
    stats = SimpleNamespace(forwards=forwards, tokens=len(ids), seconds=seconds)
    return SimpleNamespace(ids=ids, finish_reason=finish, result=SimpleNamespace(stats=stats))

def test_text_metrics_match_hand_counts():
    out = text_metrics([completion([1, 2, 1, 2, 1, 2], "stop"), completion([5, 6, 7, 8])])
    assert out["tpf"] == pytest.approx(10 / 4) and out["tokens_per_s"] == pytest.approx(10 / 1.0)
    assert out["distinct_2"] == pytest.approx(5 / 8) and out["stop_share"] == 0.5
    assert out["repetition_4"] == pytest.approx((1 - 2 / 3 + 0) / 2)

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
    assert all(0 <= row["pass_at_1"] <= 1 and row["tpf"] > 0 for row in report["settings"].values())
    assert (tmp_path / "metrics/bench_settings.csv").read_text().startswith("setting,")
    run_stage("export")
    meta = json.loads((tmp_path / "models/export/hildanext.json").read_text())
    assert (meta["stage"] == "export" and meta["decode"]["tau_mask"] == 0.5
            and meta["bench"]["perplexity"] == report["perplexity"])
    card = (tmp_path / "models/export/README.md").read_text()
    assert ("| S |" in card and "hildanext generate --model models/export" in card
            and (tmp_path / "models/export/model.safetensors").exists())
