# The one learning-rate schedule of every training loop (WSD, SFT and the demo AR pretraining): linear
# warmup over warmup_steps, then constant ("none") or a linear or cosine decay to min_ratio * lr at total.
# Entry points: lr_at(step, total, lr, warmup_steps, decay, min_ratio) and train_lr(step, p: TrainParams, total).
import math
from hildanext.config import TrainParams
def lr_at(step: int, total: int, lr: float, warmup_steps: int, decay: str = "none", min_ratio: float = 0.1) -> float:
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    shape = {"none": 1.0, "linear": 1 - progress, "cosine": 0.5 * (1 + math.cos(math.pi * progress))}[decay]
    return lr * (min_ratio + (1 - min_ratio) * shape) if decay != "none" else lr

def train_lr(step: int, p: TrainParams, total: int) -> float:
    return lr_at(step, total, p.lr, p.lr_warmup_steps, p.lr_decay, p.min_lr_ratio)
