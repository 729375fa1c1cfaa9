# The offline demo base that stands in for Qwen3-0.6B: a tiny Qwen3ForCausalLM (model.demo_qwen3_config) over
# the demo tokenizer (data.demo_tokenizer), pretrained autoregressively on the demo corpus by a plain
# causal-LM loop (warmup then cosine to 0.1 x lr). Entry points: pack_corpus, pretrain_ar, build_demo_base
# (the demo_base stage is pipeline/demo_base.py).
import math
import torch
from transformers import Qwen3ForCausalLM
from hildanext.config import DemoParams
from hildanext.data.demo_tokenizer import train_demo_tokenizer
from hildanext.model import demo_qwen3_config
from hildanext.train.schedule import lr_at
def pack_corpus(texts: list[str], tokenizer, seq_len: int) -> torch.Tensor:
    sep = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    flat = [i for ids in tokenizer(texts, add_special_tokens=False)["input_ids"] for i in ids + [sep]]
    rows = len(flat) // seq_len
    if rows == 0:
        raise ValueError(f"demo corpus has {len(flat)} tokens, fewer than one row of seq_len={seq_len}")
    return torch.tensor(flat[: rows * seq_len]).view(rows, seq_len)

@torch.no_grad()
def eval_loss(model, rows: torch.Tensor, batch_size: int) -> float:
    model.eval()
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    losses = [model(input_ids=batch, labels=batch).loss.item() for batch in batches]
    model.train()
    return sum(losses) / len(losses)

def pretrain_ar(model, train: torch.Tensor, p: DemoParams, seed: int, log) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, betas=(0.9, 0.95), weight_decay=0.1)
    model.train()
    for step in range(p.steps):
        batch = train[torch.randint(len(train), (p.batch_size,), generator=gen)]
        lr = lr_at(step, p.steps, p.lr, p.warmup_steps, "cosine", 0.1)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        log({"pretrain/loss": loss.item(), "pretrain/lr": lr}, step)
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
    metrics = {"eval_loss_init": before, "eval_loss": after, "eval_ppl": math.exp(after), "train_rows": len(train)}
    return model, tokenizer, metrics
