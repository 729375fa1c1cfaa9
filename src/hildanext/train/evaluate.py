# Held-out evaluation shared by WSD, SFT and merge: a loss function (diffusion_loss or sft_loss bound to its
# block size and params) over the first eval_rows rows in micro-batches, eval_draws mask draws each (one
# generator from a fixed seed, so draws differ and runs repeat), reduced
# to token-weighted M2T/T2T (and MTF, CAP) losses and the M2T accuracy over masked tokens (checkpoints are ranked
# on ObjectiveSetup.m2t_only()). Entry points: evaluate(model, shards, loss_fn, p, micro, fixed_t), eval_report(outs).
import torch
from hildanext.config import TrainParams
def token_mean(outs, key: str) -> float:
    return sum(getattr(o, key) * o.tokens for o in outs) / max(sum(o.tokens for o in outs), 1)

def eval_report(outs) -> dict:
    keys = ("loss_m2t", "loss_t2t") + tuple(k for k in ("loss_mtf", "loss_cap") if getattr(outs[0], k) is not None)
    masked = sum(o.masked for o in outs) or 1
    return {key: token_mean(outs, key) for key in keys} | {"acc_m2t": sum(o.acc_m2t * o.masked for o in outs) / masked}

@torch.no_grad()
def evaluate(model, shards, loss_fn, p: TrainParams, micro: int, fixed_t: float | None = None) -> dict:
    """loss_fn(model, rows, gen, fixed_t) -> LossOutput, where rows is a tuple of shard tensors."""
    model.eval()
    gen, rows = torch.Generator().manual_seed(p.eval_seed), min(len(shards), p.eval_rows)
    starts = [i for _ in range(p.eval_draws) for i in range(0, rows, micro)]
    outs = [loss_fn(model, shards[i : min(i + micro, rows)], gen, fixed_t) for i in starts]
    model.train()
    return eval_report(outs)
