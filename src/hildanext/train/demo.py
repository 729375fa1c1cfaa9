# The offline demo base that stands in for Qwen3-0.6B: a byte-level BPE tokenizer trained locally with
# Qwen3's special tokens and chat template, and a tiny Qwen3ForCausalLM pretrained autoregressively on the
# demo corpus (a plain causal-LM loop). Entry points: train_demo_tokenizer, demo_qwen3_config, pack_corpus,
# pretrain_ar, build_demo_base; demo_base_stage is the body of `hildanext demo-base` / stages/demo_base.py.
import hashlib, math
from importlib import resources
from pathlib import Path
import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM
from hildanext.config import DemoParams, Params
from hildanext.data.demo_corpus import demo_stories
from hildanext.files import write_json_atomic
from hildanext.model import model_meta, save_model
QWEN3_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
SPECIAL_TOKENS = (("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<think>", False), ("</think>", False))
def chat_template() -> str:
    return resources.files("hildanext").joinpath("assets/qwen3_chat_template.jinja").read_text()

def train_demo_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    byte_level = {"add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN3_SPLIT), "isolated"), pre_tokenizers.ByteLevel(**byte_level)])
    tok.decoder, tok.post_processor = decoders.ByteLevel(**byte_level), processors.ByteLevel(**byte_level)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIAL_TOKENS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens([AddedToken(t, special=s, normalized=False) for t, s in SPECIAL_TOKENS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=32768)
    fast.chat_template = chat_template()
    return fast

def demo_qwen3_config(tokenizer, p: DemoParams) -> Qwen3Config:
    rows = math.ceil((len(tokenizer) + 1) / p.vocab_multiple) * p.vocab_multiple
    sizes = {"hidden_size": p.hidden_size, "intermediate_size": p.intermediate_size, "num_hidden_layers": p.num_layers, "head_dim": p.head_dim}
    heads = {"num_attention_heads": p.num_heads, "num_key_value_heads": p.num_kv_heads}
    ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id, "bos_token_id": None}
    rope = {"rope_type": "default", "rope_theta": 1e6}
    return Qwen3Config(vocab_size=rows, max_position_embeddings=4096, tie_word_embeddings=True, rope_parameters=rope, **sizes, **heads, **ids)

def pack_corpus(texts: list[str], tokenizer, seq_len: int) -> torch.Tensor:
    sep = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    flat = [i for ids in tokenizer(texts, add_special_tokens=False)["input_ids"] for i in ids + [sep]]
    rows = len(flat) // seq_len
    if rows == 0:
        raise ValueError(f"demo corpus has {len(flat)} tokens, fewer than one row of seq_len={seq_len}")
    return torch.tensor(flat[: rows * seq_len]).view(rows, seq_len)

def lr_at(step: int, p: DemoParams) -> float:
    if step < p.warmup_steps:
        return p.lr * (step + 1) / p.warmup_steps
    progress = (step - p.warmup_steps) / max(1, p.steps - p.warmup_steps)
    return p.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

@torch.no_grad()
def eval_loss(model, rows: torch.Tensor, batch_size: int) -> float:
    model.eval()
    losses = [model(input_ids=rows[i : i + batch_size], labels=rows[i : i + batch_size]).loss.item() for i in range(0, len(rows), batch_size)]
    model.train()
    return sum(losses) / len(losses)

def pretrain_ar(model, train: torch.Tensor, p: DemoParams, seed: int, log) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, betas=(0.9, 0.95), weight_decay=0.1)
    model.train()
    for step in range(p.steps):
        batch = train[torch.randint(len(train), (p.batch_size,), generator=gen)]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, p)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        log({"pretrain/loss": loss.item(), "pretrain/lr": lr_at(step, p)}, step)
    model.eval()

def build_demo_base(stories: list[str], p: DemoParams, seed: int, log):
    tokenizer = train_demo_tokenizer(stories, p.vocab_size)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(demo_qwen3_config(tokenizer, p))
    rows = pack_corpus(stories, tokenizer, p.seq_len)
    held = max(1, len(rows) // 20)
    train, valid = rows[:-held], rows[-held:]
    before = eval_loss(model, valid, p.batch_size)
    pretrain_ar(model, train, p, seed, log)
    after = eval_loss(model, valid, p.batch_size)
    return model, tokenizer, {"eval_loss_init": before, "eval_loss": after, "eval_ppl": math.exp(after), "train_rows": len(train)}

def demo_base_stage(params: Params, root: Path, tracker) -> dict:
    p, out, metrics_file = params.model.demo, root / "models/demo-base", root / "metrics/demo_base.json"
    if params.model.base != "demo":
        write_json_atomic(out / "hildanext.json", {"format": "hildanext/1", "stage": "demo_base", "skipped": f"model.base is {params.model.base!r}"})
        write_json_atomic(metrics_file, {})
        return {}
    stories = demo_stories(p.stories, p.seed)
    model, tokenizer, metrics = build_demo_base(stories, p, params.runtime.seed, tracker.log)
    corpus_hash = hashlib.sha256("\n".join(stories).encode()).hexdigest()
    save_model(model, tokenizer, out, model_meta(tokenizer, "demo_base", params, 1, corpus_hash, root) | {"metrics": metrics})
    write_json_atomic(metrics_file, metrics)
    return metrics
