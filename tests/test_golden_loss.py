# Golden losses: one fixed-seed WSD step (BDLM block 4 with embedding noise, and MDLM) and one fixed-seed SFT
# step (MTF, with and without complementary masks) on a tiny float64 Qwen3, each as (loss, M2T, T2T, M2T
# accuracy, MTF, loss after one AdamW step). The values were recorded at commit 2bc35e0, before the layout
# renovation; an unintended change to masks, noise, the objective or its gradients fails here.
import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM
from hildanext.config import ObjectiveParams, SftParams
from hildanext.train.objective import ObjectiveSetup, diffusion_loss, sft_loss
GOLDEN = {
    "wsd_bdlm4": (13.223320007324219, 5.794849872589111, 4.664926528930664, 0.0, 0.0, 11.91508674621582),
    "wsd_mdlm": (12.802769660949707, 5.090940952301025, 4.850481033325195, 0.0, 0.0, 11.843111038208008),
    "sft": (17.637123107910156, 5.249180793762207, 4.720936298370361, 0.0, 4.8727874755859375, 16.087759017944336),
    "sft_complementary": (17.450883865356445, 4.904208183288574, 4.821509838104248, 0.0, 4.880747318267822,
                          16.159225463867188),
}
OBJECTIVE = ObjectiveParams(t_eps=1e-3, t_per="block", t2t_rate=0.2, t2t_weight=1.5, keep_rate=0.2, keep_weight=0.1,
                            embed_noise_std=1.0, embed_noise_steps=100)
MASK_ID, REGULAR = 120, torch.arange(100)
def tiny_float64_qwen3():
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=True)
    config._attn_implementation = "sdpa"
    return Qwen3ForCausalLM(config).double().train()

def rows():
    x0 = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(11))
    doc_ids = torch.tensor([[0] * 10 + [1] * 6, [0] * 12 + [-1] * 4])
    supervised = torch.tensor([[False] * 4 + [True] * 6 + [False] * 2 + [True] * 4,
                               [False] * 5 + [True] * 7 + [False] * 4])
    return x0, doc_ids, supervised

def one_step(loss_fn) -> list[float]:
    model = tiny_float64_qwen3()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.01)
    first = loss_fn(model)
    first.loss.backward()
    optimizer.step()
    after = loss_fn(model)
    return [first.loss.item(), first.loss_m2t, first.loss_t2t, first.acc_m2t, first.loss_mtf or 0.0, after.loss.item()]

def wsd_losses(block_size, noise):
    x0, doc_ids, _ = rows()
    def loss_fn(model):
        gen = torch.Generator().manual_seed(8)
        return diffusion_loss(model, (x0, doc_ids), ObjectiveSetup(OBJECTIVE, MASK_ID, REGULAR, block_size, "row"), gen,
                              noise=noise)
    return one_step(loss_fn)

def sft_losses(complementary):
    x0, doc_ids, supervised = rows()
    s = SftParams(mask_range=(0.3, 0.8), loss_weight="inv_t", complementary=complementary, mtf=True, mtf_weight=1.0)
    def loss_fn(model):
        gen = torch.Generator().manual_seed(9)
        return sft_loss(model, (x0, doc_ids, supervised), ObjectiveSetup(OBJECTIVE, MASK_ID, REGULAR, 4), s, gen)
    return one_step(loss_fn)

@pytest.mark.parametrize("name, compute", [
    ("wsd_bdlm4", lambda: wsd_losses(4, True)), ("wsd_mdlm", lambda: wsd_losses(None, False)),
    ("sft", lambda: sft_losses(False)), ("sft_complementary", lambda: sft_losses(True)),
])
def test_losses_equal_the_values_recorded_before_the_renovation(name, compute):
    assert compute() == pytest.approx(list(GOLDEN[name]), abs=1e-9, rel=0)
