# The M2T + T2T objective: t per block or per sequence, masking only maskable positions, T2T corruption only
# of visible tokens and only with regular ids, M2T weighted 1/t and normalised by real tokens, and the
# supervised-positions-only LM head matching a full forward of the same concat(x_t, x_0) input.
import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, pre_tokenizers
from hildanext.config import ObjectiveParams
from hildanext.train.masks import bdlm_attention_mask
from hildanext.model import masked_logits
from hildanext.train.objective import (ObjectiveSetup, corrupt_tokens, diffusion_loss, mask_tokens, regular_token_ids,
                                       sample_t)
def gen(seed=0):
    return torch.Generator().manual_seed(seed)

def test_regular_ids_exclude_specials_and_spare_rows():
    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(10)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   mask_token="<|mask|>")
    fast.add_tokens(["<think>"])
    assert regular_token_ids(fast).tolist() == list(range(10))

def test_t_is_constant_per_block_or_per_sequence():
    doc_ids = torch.zeros(2, 8, dtype=torch.long)
    t = sample_t(doc_ids, 4, ObjectiveParams(t_per="block"), "row", gen())
    assert torch.all(t[:, :4] == t[:, :1]) and torch.all(t[:, 4:] == t[:, 4:5]) and not torch.equal(t[:, 0], t[:, 4])
    seq = sample_t(doc_ids, 4, ObjectiveParams(t_per="sequence", t_eps=0.2), "row", gen())
    assert torch.all(seq == seq[:, :1]) and seq.min() >= 0.2 and seq.max() <= 1

def test_masking_and_corruption_respect_their_sets():
    x0 = torch.randint(0, 50, (4, 64), generator=gen(1))
    maskable = torch.ones_like(x0, dtype=torch.bool)
    maskable[:, 60:] = False
    xt, masked = mask_tokens(x0, torch.full(x0.shape, 0.5), maskable, 99, gen(2))
    assert torch.all(xt[masked] == 99) and torch.equal(xt[~masked], x0[~masked]) and not masked[:, 60:].any()
    regular = torch.arange(10, 40)
    visible = maskable & ~masked
    xc, changed = corrupt_tokens(xt, visible, 0.5, regular, gen(3))
    assert changed.any() and not (changed & ~visible).any() and torch.equal(xc[~changed], xt[~changed])
    assert torch.all((xc[changed] >= 10) & (xc[changed] < 40)) and torch.all(xc[changed] != x0[changed])

def test_m2t_loss_is_weighted_ce_at_masked_positions(tiny_qwen3):
    model, params = tiny_qwen3(vocab_size=128), ObjectiveParams(t2t_rate=0.0, keep_rate=0.0)
    x0, doc_ids = torch.randint(0, 100, (2, 8), generator=gen(4)), torch.tensor([[0] * 8, [0] * 5 + [1] * 3])
    out = diffusion_loss(model, (x0, doc_ids), ObjectiveSetup(params, 120, torch.arange(100), 4), gen(5), fixed_t=0.5)
    _, masked = mask_tokens(x0, torch.full(x0.shape, 0.5), doc_ids >= 0, 120, gen(5))
    xt = torch.where(masked, 120, x0)
    with torch.no_grad():
        mask = bdlm_attention_mask(doc_ids, 4)
        logits = masked_logits(model, torch.cat([xt, x0], 1), mask, torch.arange(8).repeat(2, 2))[:, :8]
    ce = F.cross_entropy(logits[masked], x0[masked], reduction="sum")
    assert masked.sum() == out.masked > 0 and abs(out.loss_m2t - 2.0 * ce.item() / 16) < 1e-4
    assert abs(out.loss.item() - out.loss_m2t) < 1e-5 and out.loss_t2t == 0.0

def test_pad_positions_are_never_masked_or_supervised(tiny_qwen3):
    model = tiny_qwen3(vocab_size=128)
    x0, doc_ids = torch.randint(0, 100, (1, 8), generator=gen(6)), torch.tensor([[0] * 4 + [-1] * 4])
    setup = ObjectiveSetup(ObjectiveParams(), 120, torch.arange(100), None)
    out = diffusion_loss(model, (x0, doc_ids), setup, gen(7), fixed_t=1.0)
    assert out.masked == 4 and out.tokens == 4
