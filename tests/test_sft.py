# The SFT objective and stage: on a 3-turn chat rendered by the real Qwen3 tokenizer and template, prompt and
# user positions are never masked, corrupted or in the loss while the EOS padding is; 1/t vs unweighted M2T
# against a hand computation; complementary pairs cover each response position exactly once; MTF's second
# pass sees round 1's draft at the drafted positions; the demo stage lowers held-out loss and resumes.
import json, os, shutil
from collections import Counter
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer
from conftest import make_tiny_qwen3, recorded
from hildanext.config import ObjectiveParams, SftParams, merge_overlay
from hildanext.data.chat import Chat
from hildanext.data.sft_data import encode_chats
from hildanext.train.objective import ObjectiveSetup, regular_token_ids, sft_loss
from hildanext.pipeline import run_stage
from test_sft_data import three_turn_chat
@pytest.fixture(scope="module")
def chat_batch(qwen3_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir)
    tokenizer.add_special_tokens({"mask_token": "<|mask|>"})
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    [(_, ids, supervised)] = encode_chats(tokenizer, [Chat(three_turn_chat(), "t")], 32, pad_id, Counter())
    x0 = torch.as_tensor(ids.astype("int64"))[None]
    return tokenizer, x0, torch.zeros_like(x0), torch.as_tensor(supervised)[None], pad_id

NOISY = ObjectiveParams(t2t_rate=0.3, keep_rate=0.3)
def run_loss(chat_batch, sft: SftParams, p=NOISY, seed=0, fixed_t=None):
    tokenizer, x0, doc_ids, supervised, _ = chat_batch
    model = make_tiny_qwen3(vocab_size=len(tokenizer) + 7).train()
    setup = ObjectiveSetup(p, tokenizer.mask_token_id, regular_token_ids(tokenizer), 32)
    return sft_loss(model, (x0, doc_ids, supervised), setup, sft, torch.Generator().manual_seed(seed), fixed_t=fixed_t)

def test_prompt_and_user_positions_are_never_noised_or_supervised(chat_batch, monkeypatch):
    tokenizer, x0, _, supervised, pad_id = chat_batch
    for seed in range(3):
        calls = recorded(monkeypatch)
        run_loss(chat_batch, SftParams(mtf=False, complementary=False), seed=seed)
        [first] = calls
        assert torch.equal(first["xt"][~supervised], x0[~supervised])
        assert not (first["select"] & ~supervised).any() and (first["xt"][supervised] != x0[supervised]).any()
    assert (x0[supervised] == pad_id).sum() > 0 and (x0[~supervised] == pad_id).sum() == 0
    calls = recorded(monkeypatch)
    run_loss(chat_batch, SftParams(mtf=False, complementary=False), fixed_t=1.0)
    assert torch.equal(calls[0]["xt"][supervised], torch.full_like(x0[supervised], tokenizer.mask_token_id))

@pytest.mark.parametrize("weight", ["inv_t", "none"])
def test_m2t_weighting_matches_a_hand_computation(chat_batch, monkeypatch, weight):
    _, x0, _, supervised, _ = chat_batch
    calls = recorded(monkeypatch)
    clean = ObjectiveParams(t2t_rate=0.0, keep_rate=0.0)
    out = run_loss(chat_batch, SftParams(mtf=False, complementary=False, loss_weight=weight), clean, fixed_t=0.4)
    select = calls[0]["select"]
    ce = F.cross_entropy(calls[0]["logits"], x0[select], reduction="none")
    expected = ce.sum() / 0.4 / supervised.sum() if weight == "inv_t" else ce.mean()
    assert out.loss_m2t == pytest.approx(float(expected), rel=1e-5) and out.tokens == int(supervised.sum())

def test_complementary_pair_masks_each_response_position_exactly_once(chat_batch, monkeypatch):
    _, x0, _, supervised, _ = chat_batch
    calls = recorded(monkeypatch)
    run_loss(chat_batch, SftParams(mtf=False, complementary=True), ObjectiveParams(t2t_rate=0.0, keep_rate=0.0))
    xt = calls[0]["xt"]
    first, second = ((xt[i] != x0[0]) for i in (0, 1))
    assert xt.shape[0] == 2 and torch.equal(first | second, supervised[0]) and not (first & second).any()

def test_mtf_second_pass_sees_the_draft_not_the_clean_tokens(chat_batch, monkeypatch):
    tokenizer, x0, _, supervised, _ = chat_batch
    calls = recorded(monkeypatch)
    out = run_loss(chat_batch, SftParams(mtf=True, complementary=False), ObjectiveParams(t2t_rate=0.0, keep_rate=0.0))
    first, second = calls
    masked = first["xt"] == tokenizer.mask_token_id
    logits = first["logits"][masked[first["select"]]]
    logits[:, tokenizer.mask_token_id] = float("-inf")
    draft = logits.argmax(-1)
    assert torch.equal(second["select"], masked) and torch.equal(second["xt"][masked], draft)
    assert torch.equal(second["xt"][~masked], first["xt"][~masked]) and (draft != x0[masked]).any()
    assert out.loss_mtf == pytest.approx(float(F.cross_entropy(second["logits"], x0[masked])), rel=1e-5)

@pytest.fixture(scope="module")
def sft_inputs(tmp_path_factory, repo_root):
    root = tmp_path_factory.mktemp("sft")
    shutil.copy(repo_root / "params.yaml", root / "params.yaml")
    merge_overlay(root / "params.yaml", repo_root / "overlays/ci.yaml")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for stage in ("demo_base", "init", "prepare", "tokenize", "wsd", "merge", "sft_data"):
            run_stage(stage)
    finally:
        os.chdir(cwd)
    return root

def test_demo_sft_lowers_held_out_loss_logs_three_losses_and_resumes(sft_inputs, monkeypatch, capsys):
    monkeypatch.chdir(sft_inputs)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    out = run_stage("sft")
    report = json.loads((sft_inputs / "metrics/sft.json").read_text())
    assert report["final"]["eval/sft/loss_m2t"] < report["start"]["loss_m2t"] and out["final/eval/sft/loss_mtf"] > 0
    meta = json.loads((sft_inputs / "models/sft/hildanext.json").read_text())
    assert meta["stage"] == "sft" and meta["block_size"] == 32
    header = (sft_inputs / "metrics/sft_log.csv").read_text().splitlines()[0].split(",")
    assert {"loss_m2t", "loss_t2t", "loss_mtf"} <= set(header)
    capsys.readouterr()
    assert run_stage("sft") == out and "sft: resuming from" in capsys.readouterr().out
    run_stage("sft", "params.yaml", ["sft.mtf=false"])
    assert "trained with other params" in capsys.readouterr().out
