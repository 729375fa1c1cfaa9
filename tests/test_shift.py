# The token shift (objective.shift) and CAP in the training objective, on a tiny float64 Qwen3: at block size 1
# the shifted training logits are the causal model's next-token logits; MDLM and block 4 match a hand-built
# reference read one position back (block starts from the clean x_0 copy), all to 1e-9 (the training forward
# returns float32 logits, so the float64 reference is rounded alike); doc-first and after-padding tokens never
# enter the loss; CAP matches a hand computation, is 0 with grads if nothing is correct, and adds at its weight.
import math
import pytest
import torch
from conftest import make_tiny_qwen3, recorded
from hildanext.config import ObjectiveParams, SftParams, WsdParams
from hildanext.model import masked_logits
from hildanext.train.masks import bdlm_attention_mask, mdlm_attention_mask, shift_source
from hildanext.train.objective import (ObjectiveSetup, as_supervised, cap_entropy, diffusion_loss, forward_selected,
                                       sft_loss)
from hildanext.train.wsd import phase_setup, wsd_phases
MASK_ID, REGULAR, LENGTH = 120, torch.arange(100), 12
SHIFT = ObjectiveParams(shift=True, t2t_rate=0.0, keep_rate=0.0, embed_noise_std=0.0)
def float64_model():
    return make_tiny_qwen3(vocab_size=128, seed=4).double()

def rows():
    x0 = torch.randint(0, 100, (3, LENGTH), generator=torch.Generator().manual_seed(3))
    doc_ids = torch.tensor([[0] * 12, [1] * 9 + [-1] * 3, [2] * 5 + [3] * 7])
    return x0, doc_ids

PREDECESSOR = torch.tensor([[False] + [True] * 11, [False] + [True] * 8 + [False] * 3,
                            [False] + [True] * 4 + [False] + [True] * 6])
def noisy(x0):
    masked = torch.rand(x0.shape, generator=torch.Generator().manual_seed(5)) < 0.5
    return torch.where(masked, MASK_ID, x0)

def shifted_logits(model, xt, block_size):
    x0, doc_ids = rows()
    setup = ObjectiveSetup(SHIFT, MASK_ID, REGULAR, block_size)
    with torch.no_grad():
        return forward_selected(as_supervised(model), (x0, doc_ids), xt, PREDECESSOR, setup)

def test_shift_source_reads_the_previous_noisy_position_or_the_clean_copy_at_block_starts():
    doc_ids = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])
    assert shift_source(doc_ids, None).tolist() == [0, 0, 1, 2, 3, 4, 5, 6]
    assert shift_source(doc_ids, 4).tolist() == [0, 0, 1, 2, 8 + 3, 4, 5, 6]
    assert shift_source(doc_ids, 4, "document").tolist() == [0, 0, 1, 8 + 2, 3, 4, 5, 8 + 6]
    assert shift_source(doc_ids, 1).tolist() == [0] + [8 + j - 1 for j in range(1, 8)]

def test_block1_shifted_logits_equal_the_causal_next_token_logits():
    model, (x0, _) = float64_model(), rows()
    got = shifted_logits(model, torch.full_like(x0, MASK_ID), 1)
    with torch.no_grad():
        split_row = [model(x0[2:, :5]).logits, model(x0[2:, 5:], position_ids=torch.arange(5, LENGTH)[None]).logits]
        causal = torch.cat([model(x0[:2]).logits, torch.cat(split_row, 1)])
    expected = [causal[b, j - 1] for b, j in PREDECESSOR.nonzero()]
    assert torch.allclose(got, torch.stack(expected).float(), atol=1e-9, rtol=0)

def test_mdlm_shift_reads_the_noisy_hidden_state_one_position_back():
    model, (x0, doc_ids) = float64_model(), rows()
    xt = noisy(x0)
    got = shifted_logits(model, xt, None)
    with torch.no_grad():
        full = masked_logits(model, xt, mdlm_attention_mask(doc_ids))
    expected = torch.stack([full[b, j - 1] for b, j in PREDECESSOR.nonzero()])
    assert torch.allclose(got, expected.float(), atol=1e-9, rtol=0)

def test_block4_shift_reads_the_clean_copy_at_block_starts_and_the_noisy_position_inside():
    model, (x0, doc_ids) = float64_model(), rows()
    xt = noisy(x0)
    got = shifted_logits(model, xt, 4)
    with torch.no_grad():
        full = masked_logits(model, torch.cat([xt, x0], 1), bdlm_attention_mask(doc_ids, 4),
                             torch.arange(LENGTH).repeat(3, 2))
    expected = [full[b, LENGTH + j - 1] if j % 4 == 0 else full[b, j - 1] for b, j in PREDECESSOR.nonzero()]
    assert torch.allclose(got, torch.stack(expected).float(), atol=1e-9, rtol=0)

@pytest.mark.parametrize("block_size", [4, None])
def test_doc_first_tokens_and_tokens_after_padding_never_enter_the_loss(monkeypatch, block_size):
    x0 = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(6))
    doc_ids = torch.tensor([[0, 0, 0, -1, -1, 1, 1, 1], [-1, 2, 2, 2, 2, 3, 3, 3]])
    expected = torch.tensor([[0, 1, 1, 0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 0, 1, 1]], dtype=torch.bool)
    noisy_params = ObjectiveParams(shift=True, t2t_rate=0.5, keep_rate=0.5)
    setup = ObjectiveSetup(noisy_params, MASK_ID, REGULAR, block_size)
    calls = recorded(monkeypatch)
    model = make_tiny_qwen3(vocab_size=128)
    for seed in range(4):
        out = diffusion_loss(model, (x0, doc_ids), setup, torch.Generator().manual_seed(seed), noise=True)
        assert not (calls[-1]["select"] & ~expected).any() and out.tokens == int(expected.sum())
        assert torch.equal(calls[-1]["xt"][~expected], x0[~expected])
    out = diffusion_loss(model, (x0, doc_ids), setup, torch.Generator().manual_seed(0), fixed_t=1.0)
    assert torch.equal(calls[-1]["select"], expected) and out.masked == int(expected.sum())
    everything = torch.ones_like(expected)
    plain = SftParams(complementary=False)
    sft = sft_loss(model, (x0, doc_ids, everything), setup, plain, torch.Generator().manual_seed(1))
    assert all(not (c["select"] & ~expected).any() for c in calls[-2:]) and sft.tokens == int(expected.sum())

def entropy(row: list[float]) -> float:
    total = sum(math.exp(v) for v in row)
    return -sum(math.exp(v) / total * math.log(math.exp(v) / total) for v in row)

def test_cap_entropy_is_the_mean_entropy_at_correct_masked_positions():
    rows_ = [[2.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.5], [1.0, 1.0, 5.0, 0.0]]
    logits = torch.tensor(rows_, dtype=torch.float64)
    targets, on_masked = torch.tensor([0, 0, 2, 2]), torch.tensor([True, True, False, True])
    expected = (entropy(rows_[0]) + entropy(rows_[3])) / 2
    assert cap_entropy(logits, targets, on_masked).item() == pytest.approx(expected, abs=1e-12)

def test_cap_entropy_is_zero_with_grads_when_no_prediction_is_correct():
    logits = torch.tensor([[0.0, 2.0], [3.0, 0.0]], dtype=torch.float64, requires_grad=True)
    cap = cap_entropy(logits, torch.tensor([0, 1]), torch.tensor([True, True]))
    cap.backward()
    assert cap.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))

def self_predicted_chat(model, setup):
    """A chat whose response is the model's own argmax with every response token masked (so all are correct)."""
    x0 = torch.randint(0, 100, (1, 16), generator=torch.Generator().manual_seed(8))
    supervised = torch.tensor([[False] * 6 + [True] * 10])
    with torch.no_grad():
        logits = forward_selected(as_supervised(model), (x0, torch.zeros_like(x0)),
                                  torch.where(supervised, MASK_ID, x0), supervised, setup)
    x0[supervised] = logits.argmax(-1)
    return x0, torch.zeros_like(x0), supervised

def test_sft_loss_adds_cap_at_its_weight_over_the_correct_masked_positions(monkeypatch):
    model = make_tiny_qwen3(vocab_size=128, seed=9).double()
    clean = ObjectiveParams(t2t_rate=0.0, keep_rate=0.0)
    setup, s = ObjectiveSetup(clean, MASK_ID, REGULAR, 16), SftParams(mtf=True, mtf_weight=0.5, complementary=False)
    batch = self_predicted_chat(model, setup)
    calls = recorded(monkeypatch)
    out = sft_loss(model, batch, setup.with_cap(2.0), s, torch.Generator().manual_seed(0), fixed_t=1.0)
    probs = calls[0]["logits"].softmax(-1)
    expected_cap = float(-(probs * probs.log()).sum(-1).mean())
    assert out.acc_m2t == 1.0 and out.loss_cap == pytest.approx(expected_cap, rel=1e-9) and expected_cap > 0
    parts = out.loss_m2t + clean.t2t_weight * out.loss_t2t + 2.0 * out.loss_cap + 0.5 * out.loss_mtf
    assert out.loss.item() == pytest.approx(parts, rel=1e-6)
    off = sft_loss(model, batch, setup, s, torch.Generator().manual_seed(0), fixed_t=1.0)
    assert off.loss_cap is None and off.loss.item() == pytest.approx(parts - 2.0 * out.loss_cap, rel=1e-6)

def test_wsd_puts_cap_only_in_the_decay_phases():
    p = WsdParams(warmup_blocks=(1, 4), decay_to=4, decay_cap_weight=1.5)
    setup = ObjectiveSetup(ObjectiveParams(), MASK_ID, REGULAR, None)
    weights = {ph.name: (phase_setup(setup, ph, p).cap_weight, phase_setup(setup, ph, p).block_size)
               for ph in wsd_phases(p, 16)}
    assert weights == {"warmup-1": (0.0, 1), "warmup-4": (0.0, 4), "stable-16": (0.0, None), "decay-8": (1.5, 8),
                       "decay-4": (1.5, 4)}
