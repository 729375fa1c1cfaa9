# The Qwen3 wrapper on tiny random Qwen3 models: explicit 4D masks under sdpa (bool) and eager (additive
# float) agree, a raw bool mask under eager is the silent transformers pitfall, causal vs bidirectional
# behaviour, <|mask|> in a spare row vs resize, save/reload through the plain Auto classes, and a folder read back
# (ModelInfo from hildanext.json, an older record's missing keys, the tokenizer fallback, the candidate order).
import json
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, pre_tokenizers
from hildanext.model import add_mask_token, attention_mask_4d, causal_allowed, masked_logits, model_meta, save_model
from hildanext.model import ModelFolderError, ModelInfo, check_model_folder, first_model_dir, read_model_info
from hildanext.model import recorded_params
BLOCK2_CAUSAL_6 = torch.tensor([
    [1, 1, 0, 0, 0, 0],
    [1, 1, 0, 0, 0, 0],
    [1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1],
], dtype=torch.bool)
def ids(n=6, seed=0):
    return torch.randint(0, 100, (1, n), generator=torch.Generator().manual_seed(seed))

def test_attention_mask_4d_forms():
    allowed = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)
    sdpa = attention_mask_4d(allowed, "sdpa", torch.float32)
    eager = attention_mask_4d(allowed, "eager", torch.float32)
    assert sdpa.dtype == torch.bool and sdpa.shape == (1, 1, 2, 2) and torch.equal(sdpa[0, 0], allowed)
    assert eager.dtype == torch.float32 and eager[0, 0, 0, 0] == 0
    assert eager[0, 0, 0, 1] == torch.finfo(torch.float32).min

def test_sdpa_bool_equals_eager_float_on_block_mask(tiny_qwen3):
    sdpa, eager = tiny_qwen3(attn="sdpa"), tiny_qwen3(attn="eager")
    eager.load_state_dict(sdpa.state_dict())
    x = ids()
    torch.testing.assert_close(masked_logits(sdpa, x, BLOCK2_CAUSAL_6), masked_logits(eager, x, BLOCK2_CAUSAL_6),
                               atol=1e-5, rtol=1e-4)

def test_raw_bool_mask_under_eager_is_wrong(tiny_qwen3):
    eager = tiny_qwen3(attn="eager")
    x = ids()
    with torch.no_grad():
        raw = eager(input_ids=x, attention_mask=BLOCK2_CAUSAL_6[None, None], use_cache=False).logits
    assert not torch.allclose(raw, masked_logits(eager, x, BLOCK2_CAUSAL_6), atol=1e-4)

@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_causal_mask_reproduces_plain_forward(tiny_qwen3, attn):
    model, x = tiny_qwen3(attn=attn), ids()
    with torch.no_grad():
        torch.testing.assert_close(masked_logits(model, x, causal_allowed(6)), model(input_ids=x).logits, atol=1e-5,
                                   rtol=1e-4)

@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_bidirectional_sees_the_future_causal_does_not(tiny_qwen3, attn):
    model, x = tiny_qwen3(attn=attn), ids()
    y = x.clone()
    y[0, 4] = (y[0, 4] + 1) % 100
    full = torch.ones(6, 6, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(masked_logits(model, x, causal_allowed(6))[0, 0],
                              masked_logits(model, y, causal_allowed(6))[0, 0])
        assert not torch.allclose(masked_logits(model, x, full)[0, 0], masked_logits(model, y, full)[0, 0])
        block = masked_logits(model, x, BLOCK2_CAUSAL_6)[0], masked_logits(model, y, BLOCK2_CAUSAL_6)[0]
    assert torch.allclose(block[0][:4], block[1][:4]) and not torch.allclose(block[0][4], block[1][4])

def word_tokenizer(words):
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=words[0]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": ["<|endoftext|>", "<|im_end|>"]})
    return fast

def test_mask_token_uses_spare_row_without_resize(tiny_qwen3):
    model, tok = tiny_qwen3(vocab_size=128), word_tokenizer([f"w{i}" for i in range(100)])
    before = model.get_input_embeddings().weight.detach().clone()
    mask_id = add_mask_token(model, tok)
    assert mask_id == 102 and tok.mask_token_id == 102 and model.config.mask_token_id == 102
    assert torch.equal(model.get_input_embeddings().weight, before)

def test_mask_token_resizes_when_no_spare_row(tiny_qwen3):
    model, tok = tiny_qwen3(vocab_size=102), word_tokenizer([f"w{i}" for i in range(100)])
    mask_id = add_mask_token(model, tok)
    assert mask_id == 102 and model.get_input_embeddings().weight.shape[0] == 128
    assert model.get_output_embeddings().weight.shape[0] == 128

def test_save_reload_plain_auto_is_causal_and_differs_from_block(tiny_qwen3, tmp_path):
    model, tok = tiny_qwen3(vocab_size=128), word_tokenizer([f"w{i}" for i in range(100)])
    add_mask_token(model, tok)
    out = save_model(model, tok, tmp_path / "m", model_meta(tok, "test", None, 1, "h", "c0ffee"))
    check_model_folder(out)
    meta = json.loads((out / "hildanext.json").read_text())
    assert (meta["mask_id"], meta["pad_id"], meta["stop_ids"], meta["block_size"]) == (102, 101, [100, 101], 1)
    assert "hildanext's decoder" in meta["note"] and "hildanext's decoder" in (out / "README.md").read_text()
    assert meta["git_commit"] == "c0ffee" and "git commit `c0ffee`" in (out / "README.md").read_text()
    again = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    tok2 = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert tok2.mask_token_id == 102 and again.config.mask_token_id == 102
    x = ids()
    with torch.no_grad():
        plain = again(input_ids=x).logits
        torch.testing.assert_close(plain, model(input_ids=x).logits)
        assert not torch.allclose(plain, masked_logits(again, x, BLOCK2_CAUSAL_6), atol=1e-4)

def test_missing_model_files_are_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelFolderError, match="missing model.safetensors, tokenizer.json, tokenizer_config.json"):
        check_model_folder(tmp_path)

def test_a_saved_folder_describes_itself_and_a_plain_one_falls_back_to_the_tokenizer(tiny_qwen3, tmp_path):
    model, tok = tiny_qwen3(vocab_size=128), word_tokenizer([f"w{i}" for i in range(100)])
    add_mask_token(model, tok)
    out = save_model(model, tok, tmp_path / "m", model_meta(tok, "test", None, 16, "h", "c0ffee"))
    assert read_model_info(out) == ModelInfo(eos_id=100, mask_id=102, stop_ids=(101,), pad_id=101, block_size=16)
    assert recorded_params(out) is None and recorded_params(tmp_path) is None
    meta = json.loads((out / "hildanext.json").read_text())
    older = {k: v for k, v in meta.items() if k not in ("block_size", "pad_id")} | {"stop_ids": [101, 100], "extra": 1}
    (out / "hildanext.json").write_text(json.dumps(older))
    assert read_model_info(out) == ModelInfo(eos_id=100, mask_id=102, stop_ids=(101,), pad_id=None, block_size=None)
    plain = tmp_path / "plain"
    model.save_pretrained(plain)
    tok.save_pretrained(plain)
    assert read_model_info(plain, tok, 8) == ModelInfo(100, 102, (101,), 101, 8) == read_model_info(None, tok, 8)
    with pytest.raises(ModelFolderError, match="no hildanext.json and no tokenizer"):
        read_model_info(plain)

def test_first_model_dir_takes_candidates_in_order(tmp_path):
    for name in ("b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    (tmp_path / "a").mkdir()
    assert first_model_dir(["a", "c", "b"], tmp_path) == ("c", tmp_path / "c")
    assert first_model_dir(["a", "z"], tmp_path) is None
