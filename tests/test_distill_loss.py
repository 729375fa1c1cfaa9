# The distillation terms of the one loss module against hand computations on tiny tensors and a tiny real Qwen3:
# CAP at a temperature, KL(teacher || student) with T^2 and the student's extra vocabulary rows, the teacher read
# shift-aligned per document, semi-AR decoder states (earlier blocks clean, one noised, later fully masked; the
# complement flips them), T2T from the model's own drafts, sft_loss's KD term, the early backward per pass (same
# float64 gradient as one backward) and the ranking eval over several mask draws.
import math
import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_qwen3
from hildanext.config import ObjectiveParams, SftParams
from hildanext.model import masked_logits
from hildanext.train.evaluate import evaluate
from hildanext.train.masks import bdlm_attention_mask
from hildanext.train.objective import (LossOutput, Noised, ObjectiveSetup, as_supervised, cap_entropy,
                                       draft_substitutions, example_t, kd_loss, semi_ar_t, sft_loss, sft_masks,
                                       teacher_logprobs)
MASK = 60
CLEAN = ObjectiveParams(t2t_rate=0.0, keep_rate=0.0, shift=False)
def entropy(values: list[float]) -> float:
    z = sum(math.exp(v) for v in values)
    return -sum(math.exp(v) / z * (v - math.log(z)) for v in values)

def test_cap_entropy_at_a_temperature_counts_only_correct_masked_positions():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    targets, masked = torch.tensor([0, 2, 2]), torch.tensor([True, True, False])
    assert cap_entropy(logits, targets, masked, 0.5).item() == pytest.approx(entropy([4.0, 0.0, 0.0]), rel=1e-6)
    assert cap_entropy(logits, targets, masked).item() == pytest.approx(entropy([2.0, 0.0, 0.0]), rel=1e-6)

def test_kd_loss_is_t_squared_kl_over_the_teacher_vocabulary():
    teacher, student = [1.0, 2.0, 0.0], [0.0, 0.5, 0.0, 5.0]
    temp = 2.0
    zt = sum(math.exp(v / temp) for v in teacher)
    zs = sum(math.exp(v / temp) for v in student)
    expected = temp**2 * sum(math.exp(t / temp) / zt * ((t / temp - math.log(zt)) - (s / temp - math.log(zs)))
                             for t, s in zip(teacher, student[:3], strict=True))
    teacher_logp = F.log_softmax(torch.tensor([teacher]) / temp, -1)
    assert kd_loss(torch.tensor([student]), teacher_logp, temp).item() == pytest.approx(expected, rel=1e-6)
    assert kd_loss(torch.tensor([teacher + [-1e9]]), teacher_logp, temp).item() == pytest.approx(0.0, abs=1e-6)

def test_teacher_reads_position_j_minus_1_of_its_own_document_only():
    teacher = make_tiny_qwen3(vocab_size=64, seed=3).double()
    x0 = torch.randint(0, 50, (1, 12), generator=torch.Generator().manual_seed(0))
    doc_ids = torch.tensor([[0] * 5 + [1] * 7])
    picked = (torch.tensor([0, 0]), torch.tensor([3, 8]))
    got = teacher_logprobs(teacher, x0, doc_ids, picked, MASK, 2.0)
    with torch.no_grad():
        first, second = teacher(x0[:, :5]).logits[0, 2], teacher(x0[:, 5:]).logits[0, 2]
    for row, logits in zip(got, (first, second), strict=True):
        expected = F.log_softmax(logits.masked_fill(torch.arange(64) == MASK, float("-inf")) / 2.0, -1)
        assert torch.allclose(row.double(), expected, atol=1e-5) and row[MASK] == float("-inf")

def semi_setup(block: int = 4) -> ObjectiveSetup:
    return ObjectiveSetup(CLEAN, MASK, torch.arange(50), block)

def test_semi_ar_rows_are_clean_before_the_pivot_noised_at_it_and_fully_masked_after():
    doc_ids = torch.tensor([[0] * 12 + [1] * 8 + [-1] * 4])
    supervised = torch.zeros(1, 24, dtype=torch.bool)
    supervised[0, 5:12], supervised[0, 13:20] = True, True
    t, pivots, mid = torch.full((1, 24), 0.4), set(), float(torch.tensor(0.4))
    for seed in range(30):
        staged = semi_ar_t(doc_ids, supervised, t, semi_setup(), 1.0, torch.Generator().manual_seed(seed))
        for start, end in ((0, 12), (12, 20)):
            blocks = staged[0, start:end].view(-1, 4)[:, 0].tolist()
            pivot = blocks.index(mid)
            assert blocks == [0.0] * pivot + [mid] + [1.0] * (len(blocks) - pivot - 1)
            assert supervised[0, start + 4 * pivot : start + 4 * pivot + 4].any()
            pivots.add((start, pivot))
    assert pivots == {(0, 1), (0, 2), (12, 0), (12, 1)}
    assert torch.equal(semi_ar_t(doc_ids, supervised, t, semi_setup(), 0.0, torch.Generator()), t)

def test_semi_ar_complement_masks_the_clean_blocks_and_spares_the_later_ones():
    x0, doc_ids = torch.arange(16)[None], torch.zeros(1, 16, dtype=torch.long)
    supervised = torch.ones(1, 16, dtype=torch.bool)
    s = SftParams(semi_ar_rate=1.0, complementary=True, mask_range=(0.5, 0.5))
    for seed in range(5):
        _, _, _, t, masked = sft_masks((x0, doc_ids, supervised), semi_setup(), s, torch.Generator().manual_seed(seed),
                                       None)
        assert torch.equal(masked[0][t[0] == 1.0], torch.ones(int((t[0] == 1.0).sum()), dtype=torch.bool))
        assert not masked[0][t[0] == 0.0].any() and masked[1][t[1] == 1.0].all() and not masked[1][t[1] == 0.0].any()
        assert torch.equal(masked[0] | masked[1], supervised[0]) and not (masked[0] & masked[1]).any()

def test_draft_t2t_swaps_in_the_models_argmax_where_it_is_wrong():
    model = make_tiny_qwen3(vocab_size=64, seed=5).double()
    net, setup = as_supervised(model, exact=True), semi_setup(8)
    x0, doc_ids = torch.randint(0, 50, (1, 16), generator=torch.Generator().manual_seed(1)), torch.zeros(1, 16).long()
    substituted = torch.zeros(1, 16, dtype=torch.bool)
    substituted[0, [2, 5, 9, 14]] = True
    uniform = torch.where(substituted, 55, x0)
    n = Noised(uniform, torch.zeros_like(substituted), substituted, torch.zeros_like(substituted))
    out = draft_substitutions(net, (x0, doc_ids), n, setup, 1.0, torch.Generator().manual_seed(0))
    probe = torch.where(substituted, MASK, x0)
    with torch.no_grad():
        logits = masked_logits(model, torch.cat([probe, x0], 1), bdlm_attention_mask(doc_ids, 8),
                               torch.arange(16).repeat(1, 2))[0, :16]
    logits[:, MASK] = float("-inf")
    draft = logits.argmax(-1)
    expected = torch.where(substituted[0] & (draft != x0[0]), draft, uniform[0])
    assert torch.equal(out.xt[0], expected) and (out.xt[0] != uniform[0]).any()

def test_sft_loss_adds_kd_weight_times_the_hand_kl_at_masked_positions():
    student, teacher = make_tiny_qwen3(vocab_size=64, seed=1).double(), make_tiny_qwen3(vocab_size=64, seed=2).double()
    x0 = torch.randint(0, 50, (1, 16), generator=torch.Generator().manual_seed(2))
    doc_ids, supervised = torch.zeros(1, 16, dtype=torch.long), torch.zeros(1, 16, dtype=torch.bool)
    supervised[0, 4:] = True
    s = SftParams(complementary=False, mtf=False, cap_weight=0.0, kd_weight=0.7, kd_temperature=2.0)
    setup = ObjectiveSetup(CLEAN, MASK, torch.arange(50), 8, teacher=teacher)
    net = as_supervised(student, exact=True)
    out = sft_loss(net, (x0, doc_ids, supervised), setup, s, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    t = example_t(doc_ids, *s.mask_range, gen)
    masked = (torch.rand(x0.shape, generator=gen) < t) & supervised
    with torch.no_grad():
        logits = masked_logits(student, torch.cat([torch.where(masked, MASK, x0), x0], 1),
                               bdlm_attention_mask(doc_ids, 8), torch.arange(16).repeat(1, 2))[0, :16]
        teacher_logits = teacher(x0).logits[0]
    cols = torch.nonzero(masked[0]).flatten()
    keep, kl = torch.arange(64) != MASK, []
    for j in cols.tolist():
        lp, lq = F.log_softmax(teacher_logits[j - 1][keep] / 2, -1), F.log_softmax(logits[j] / 2, -1)[keep]
        kl.append((lp.exp() * (lp - lq)).sum())
    assert len(cols) > 2 and out.loss_kd == pytest.approx(4 * float(sum(kl)) / len(cols), rel=1e-5)
    plain = sft_loss(net, (x0, doc_ids, supervised), setup, s.__class__(**{**s.__dict__, "kd_weight": 0.0}),
                     torch.Generator().manual_seed(3))
    assert out.loss.item() == pytest.approx(plain.loss.item() + 0.7 * out.loss_kd, rel=1e-9)

def test_early_backward_per_pass_gives_the_one_backward_gradient_in_float64():
    model, teacher = make_tiny_qwen3(vocab_size=64, seed=1).double(), make_tiny_qwen3(vocab_size=64, seed=2).double()
    net = as_supervised(model, exact=True)
    x0 = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(4))
    doc_ids, supervised = torch.tensor([[0] * 16, [0] * 8 + [1] * 8]), torch.ones(2, 16, dtype=torch.bool)
    s = SftParams(kd_weight=0.5, semi_ar_rate=0.5, t2t_draft_rate=0.5, cap_temperature=0.5, mask_range=(0.3, 1.0))
    setup = ObjectiveSetup(ObjectiveParams(shift=True), MASK, torch.arange(50), 8, cap_weight=2.0, teacher=teacher)
    grads, calls = [], []
    for backward in (None, lambda term: calls.append(term.backward())):
        model.zero_grad()
        out = sft_loss(net, (x0, doc_ids, supervised), ObjectiveSetup(**{**setup.__dict__, "backward": backward}), s,
                       torch.Generator().manual_seed(5))
        if out.loss.requires_grad:
            out.loss.backward()
        grads.append(([p.grad.clone() for p in model.parameters()], out.loss.item(), out.loss.requires_grad))
    (one, loss_one, graph_one), (early, loss_early, graph_early) = grads
    assert len(calls) == 2 and graph_one and not graph_early and loss_one == pytest.approx(loss_early, rel=1e-12)
    assert all(torch.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(one, early, strict=True))

def test_evaluate_averages_several_mask_draws():
    seen = []
    def loss_fn(model, rows, gen, fixed_t):
        value = torch.rand(1, generator=gen).item()
        seen.append(value)
        return LossOutput(torch.tensor(value), value, 0.0, 0.0, 1, 1)
    shards, p = [torch.zeros(4)] * 4, SftParams(eval_rows=4, eval_draws=3)
    report = evaluate(torch.nn.Linear(1, 1), shards, loss_fn, p, 2)
    assert len(seen) == 6 and len(set(seen)) == 6 and report["loss_m2t"] == pytest.approx(sum(seen) / 6)
