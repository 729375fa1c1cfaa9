# The CPT loss equals DESIGN.md's formula, M2T (CE/t over masked, divided by the real tokens) + t2t_weight x T2T
# mean + keep_weight x KEEP mean, recomputed from a full forward on the same seeded draws; and what KEEP teaches
# pays off at decode time: a model that predicts its input makes no S-mode edits on committed tokens (a model
# that predicts its neighbour's token does, so the check can fail).
from types import SimpleNamespace
import pytest
import torch
import torch.nn.functional as F
from hildanext.config import DecodeParams, ObjectiveParams
from hildanext.decode.decoder import generate_ids
from hildanext.decode.settings import SpecialIds, resolve_settings
from hildanext.model import masked_logits
from hildanext.train.masks import bdlm_attention_mask
from hildanext.train.objective import ObjectiveSetup, diffusion_loss, mask_tokens, noise_tokens, sample_t
VOCAB, MASK, EOS = 16, 15, 14
def test_diffusion_loss_is_m2t_plus_weighted_t2t_and_keep_means(tiny_qwen3):
    model = tiny_qwen3(vocab_size=128)
    p = ObjectiveParams(t2t_rate=0.4, t2t_weight=0.3, keep_rate=0.4, keep_weight=0.5)
    setup = ObjectiveSetup(p, 120, torch.arange(100), 4)
    x0 = torch.randint(0, 100, (2, 32), generator=torch.Generator().manual_seed(1))
    doc_ids = torch.tensor([[0] * 32, [0] * 20 + [1] * 8 + [-1] * 4])
    out = diffusion_loss(model, (x0, doc_ids), setup, torch.Generator().manual_seed(2))
    gen, maskable = torch.Generator().manual_seed(2), doc_ids >= 0
    t = sample_t(doc_ids, 4, p, "row", gen)
    xt, masked = mask_tokens(x0, t, maskable, 120, gen)
    n = noise_tokens(x0, xt, masked, maskable, setup, gen)
    with torch.no_grad():
        logits = masked_logits(model, torch.cat([n.xt, x0], 1), bdlm_attention_mask(doc_ids, 4),
                               torch.arange(32).repeat(2, 2))[:, :32]
    ce = F.cross_entropy(logits.reshape(-1, 128), x0.reshape(-1), reduction="none").view(2, 32)
    m2t = (ce / t)[masked].sum() / maskable.sum()
    t2t, keep = ce[n.substituted].mean(), ce[n.kept].mean()
    assert masked.any() and n.substituted.any() and n.kept.any() and not (n.substituted & n.kept).any()
    assert out.loss_m2t == pytest.approx(m2t.item(), abs=1e-4) and out.loss_t2t == pytest.approx(t2t.item(), abs=1e-4)
    assert out.loss.item() == pytest.approx((m2t + 0.3 * t2t + 0.5 * keep).item(), abs=1e-4)

class EchoLM(torch.nn.Module):
    """Logits with almost all mass on each position's input token (plus offset); a weak position guess at masks."""
    def __init__(self, offset: int = 0):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, VOCAB)
        self.embed.weight.data = torch.eye(VOCAB).roll(offset, 1) * 20.0
        self.config = SimpleNamespace(vocab_size=VOCAB, _attn_implementation="sdpa")
        self.dtype, self.device = torch.float32, torch.device("cpu")
    def get_input_embeddings(self):
        return self.embed
    def forward(self, input_ids, position_ids, logits_to_keep, **kwargs):
        guess = F.one_hot(position_ids % 10 + 1, VOCAB).float()
        return SimpleNamespace(logits=(self.embed(input_ids) + guess)[:, -logits_to_keep:])

@pytest.mark.parametrize("offset, edits", [(0, False), (1, True)], ids=["echo", "other-token"])
def test_a_model_that_predicts_its_input_makes_no_s_mode_edits(offset, edits):
    settings = resolve_settings(DecodeParams(), 4, "S", cache=False, max_new_tokens=8)
    assert (settings.tau_mask, settings.tau_edit) == (DecodeParams().presets.S_MODE.tau_mask, 0.0)
    out = generate_ids(EchoLM(offset), [1, 2, 3, 4, 5], settings, SpecialIds(MASK, EOS))
    assert any(r.unmasked for r in out.trace) and any(r.edited for r in out.trace) == edits
    if not edits:
        assert out.ids == [(5 + i) % 10 + 1 for i in range(8)] and len(out.trace) >= 8
