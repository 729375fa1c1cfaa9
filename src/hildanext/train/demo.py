# The offline demo base that stands in for Qwen3-0.6B: a tiny Qwen3ForCausalLM (model.demo_qwen3_config) over
# the demo tokenizer (data.demo_tokenizer), pretrained autoregressively on the demo corpus by a plain
# causal-LM loop. Entry points: pack_corpus, pretrain_ar, build_demo_base; demo_base_stage is the body of
# `hildanext demo-base` / stages/demo_base.py.
import hashlib, math
from pathlib import Path
import torch
from transformers import Qwen3ForCausalLM
from hildanext.config import DemoParams, Params
from hildanext.data.demo_corpus import demo_stories
from hildanext.files import write_json_atomic
from hildanext.data.demo_tokenizer import train_demo_tokenizer
from hildanext.model import demo_qwen3_config, model_meta, save_model
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
