# `hildanext smoke-test`: a one-minute end-to-end check on the demo assets, built in memory (no files, no
# network): the model (the folder the CLI chose from serve.model_candidates, else the tiny demo model), one WSD
# step, one SFT batch, one inference per preset; one line per step, then OK (a failure exits non-zero).
# Entry point: smoke_lines(params, model_dir) -> iterator of lines.
import time
from collections import Counter
from pathlib import Path
import torch
from hildanext.config import Params, SftParams
from hildanext.data.chat import demo_chats
from hildanext.data.demo_corpus import demo_stories
from hildanext.data.sft_data import encode_chats
from hildanext.decode.engines import Request, make_engine
from hildanext.train.objective import ObjectiveSetup, diffusion_loss, regular_token_ids, sft_loss
from hildanext.serve.loading import dummy_engine
def engine_for(params: Params, model_dir: Path | None):
    if model_dir is None:
        return dummy_engine(params), "demo model (in memory)"
    return make_engine("diffusion", model_dir, params), str(model_dir)

def train_step(model, loss) -> float:
    loss.backward()
    torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4).step()
    model.zero_grad(set_to_none=True)
    return float(loss.detach())

def wsd_batch(tokenizer, eos_id: int, length: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    ids, docs = [], []
    for doc, text in enumerate(demo_stories(8, 5)):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"] + [eos_id]
        ids, docs = ids + piece, docs + [doc] * len(piece)
    rows = len(ids) // length
    return tuple(torch.tensor(x[: rows * length]).view(rows, length)[:2] for x in (ids, docs))

def smoke_lines(params: Params, model_dir: Path | None = None):
    start = time.perf_counter()
    engine, where = engine_for(params, model_dir)
    model, tokenizer, mask_id, eos_id = engine.model, engine.tokenizer, engine.special.mask_id, engine.special.eos_id
    yield f"model: {where} ({sum(p.numel() for p in model.parameters())} parameters, {model.device})"
    setup = ObjectiveSetup(params.objective, mask_id, regular_token_ids(tokenizer), 4)
    gen = torch.Generator().manual_seed(0)
    model.train()
    out = diffusion_loss(model, wsd_batch(tokenizer, eos_id), setup, gen)
    yield f"wsd step: loss {train_step(model, out.loss):.3f} (m2t {out.loss_m2t:.3f}, t2t {out.loss_t2t:.3f})"
    [(_, ids, supervised)] = encode_chats(tokenizer, demo_chats(1, 3), 8, eos_id, Counter())
    x0 = torch.as_tensor(ids.astype("int64"))[None]
    rows = x0, torch.zeros_like(x0), torch.as_tensor(supervised)[None]
    out = sft_loss(model, rows, setup.at(8), SftParams(), gen)
    yield f"sft batch: loss {train_step(model, out.loss):.3f} (m2t {out.loss_m2t:.3f}, mtf {out.loss_mtf:.3f})"
    model.eval()
    for mode in ("S", "Q"):
        done = engine.complete(Request(prompt="Once upon a time", mode=mode, max_new_tokens=32))
        stats = done.result.stats
        yield f"decode {mode}: {stats.forwards} forwards, TPF {stats.tpf:.2f}, {len(done.ids)} tokens"
    yield f"OK ({time.perf_counter() - start:.1f} s)"
