# The offline demo base: the synthetic corpus, the locally trained byte-level BPE tokenizer (Qwen3 specials
# after the BPE vocabulary, Qwen3 chat template), and the tiny Qwen3 pretrained autoregressively: all
# deterministic; pretraining lowers the held-out loss; demo_base + init stages where init reproduces the base.
import dataclasses, json
import torch
from hildanext.config import DemoParams, RuntimeParams, load_params, merge_overlay
from hildanext.data.demo_corpus import demo_stories, write_demo_corpus
from hildanext.data.demo_tokenizer import train_demo_tokenizer
from hildanext.model import demo_qwen3_config
from hildanext.train.demo import build_demo_base, pack_corpus
from hildanext.files import sha256_file
from hildanext.model import causal_allowed, load_model, masked_logits
from hildanext.pipeline import run_stage
TINY = DemoParams(stories=200, vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                  num_kv_heads=1, head_dim=16, seq_len=32, batch_size=4, steps=12, warmup_steps=2)
def test_demo_corpus_is_deterministic_and_marked(tmp_path):
    assert demo_stories(50, 7) == demo_stories(50, 7) != demo_stories(50, 8)
    write_demo_corpus(tmp_path / "a.jsonl", 20, 7)
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert (len(rows) == 20 and {r["source"] for r in rows} == {"demo-synthetic"}
            and rows[3]["text"] == demo_stories(20, 7)[3])

def test_demo_tokenizer_mirrors_qwen3_layout(tmp_path):
    stories = demo_stories(200, 1)
    tok = train_demo_tokenizer(stories, 400)
    tok.save_pretrained(tmp_path / "a")
    train_demo_tokenizer(stories, 400).save_pretrained(tmp_path / "b")
    assert sha256_file(tmp_path / "a/tokenizer.json") == sha256_file(tmp_path / "b/tokenizer.json")
    specials = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"])
    assert specials == list(range(len(tok) - 5, len(tok))) and tok.mask_token is None
    assert tok.decode(tok(stories[0])["input_ids"]) == stories[0]
    chat = tok.apply_chat_template([{"role": "user", "content": "Tell a story."}], tokenize=False,
                                   add_generation_prompt=True, enable_thinking=False)
    assert chat == "<|im_start|>user\nTell a story.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    config = demo_qwen3_config(tok, TINY)
    assert config.vocab_size % 64 == 0 and config.vocab_size > len(tok) and config.tie_word_embeddings

def test_pack_corpus_separates_documents():
    tok = train_demo_tokenizer(demo_stories(50, 1), 400)
    rows = pack_corpus(["One day.", "The end."], tok, 4)
    sep = tok.convert_tokens_to_ids("<|endoftext|>")
    flat = tok(["One day.", "The end."], add_special_tokens=False)["input_ids"]
    assert rows.flatten().tolist() == (flat[0] + [sep] + flat[1] + [sep])[: rows.numel()]

def test_demo_pretraining_is_deterministic_and_learns():
    stories, logged = demo_stories(TINY.stories, TINY.seed), []
    model_a, _, metrics = build_demo_base(stories, TINY, 0, lambda m, step: logged.append(step))
    model_b, _, _ = build_demo_base(stories, TINY, 0, lambda m, step: None)
    assert logged == list(range(TINY.steps)) and metrics["eval_loss"] < metrics["eval_loss_init"] - 0.5
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items(), strict=True):
        assert torch.equal(a, b), name

def test_demo_base_then_init_reproduces_base_logits(workdir, repo_root):
    merge_overlay(workdir / "params.yaml", repo_root / "overlays/ci.yaml")
    run_stage("demo_base")
    metrics = run_stage("init")
    base, tok = load_model(workdir / "models/demo-base", RuntimeParams())
    init, init_tok = load_model(workdir / "models/init", RuntimeParams())
    assert metrics["mask_id"] == len(tok) == init_tok.mask_token_id and metrics["resized"] == 0
    meta = json.loads((workdir / "models/demo-base/hildanext.json").read_text())
    assert meta["mask_id"] is None and meta["metrics"]["eval_loss"] < meta["metrics"]["eval_loss_init"]
    assert meta["params"] == json.loads(json.dumps(dataclasses.asdict(load_params(workdir / "params.yaml"))))
    x = torch.tensor([tok("Once upon a time, there was a cat.")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(masked_logits(init, x, causal_allowed(x.shape[1])), base(input_ids=x).logits)
