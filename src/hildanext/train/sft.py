# LLaDA2.1 SFT and distillation as a loop spec: the SFT mixture (M2T on masked response tokens, T2T on corrupted
# ones, KEEP, optional complementary masks, semi-AR states, MTF, CAP at a temperature, logit KD from a teacher) in
# BDLM at the trained block size, through the same setup, loop, checkpoints and resume as WSD, each extra pass
# backwarded as it is computed, with eval on held-out rows. Entry points: sft_eval_loss, sft_setup, best_key,
# sft_spec(run, eval_shards, block_size, teacher) -> LoopSpec.
from dataclasses import replace
from hildanext.config import SftParams
from hildanext.data.sft_data import SftShards
from hildanext.train.evaluate import evaluate
from hildanext.train.loop import LoopSpec, scaled_backward
from hildanext.train.objective import ObjectiveSetup, sft_loss
from hildanext.train.setup import TrainRun
BEST_KEY = "eval/sft/loss_m2t"
def best_key(stage: str) -> str:
    return f"eval/{stage}/loss_m2t"

def sft_eval_loss(setup: ObjectiveSetup, s: SftParams):
    """The evaluate() loss of SFT: sft_loss at setup.block_size over (input_ids, doc_ids, supervised) rows."""
    def loss_fn(model, rows, gen, fixed_t):
        return sft_loss(model, rows, setup, s, gen, fixed_t=fixed_t)
    return loss_fn

def sft_setup(run: TrainRun, block_size: int) -> ObjectiveSetup:
    """The SFT loss setup: BDLM at block_size with CAP at the stage's cap_weight and cap_temperature, no teacher."""
    return run.loss_setup(block_size).with_cap(run.p.cap_weight, run.p.cap_temperature)

def sft_spec(run: TrainRun, eval_shards: SftShards, block_size: int, teacher=None) -> LoopSpec:
    """The stage's loop (name run.job.stage); the teacher (KD) serves training only, eval stays teacher-free."""
    s, setup, stage = run.p, sft_setup(run, block_size), run.job.stage
    eval_loss = sft_eval_loss(setup, s)
    def loss_at(model, batch, step, micro):
        rows = batch["input_ids"], batch["doc_ids"], batch["supervised"]
        with run.context():
            return sft_loss(run.net, rows, replace(setup, teacher=teacher, backward=scaled_backward(spec)), s,
                            run.generator(step, micro))
    def eval_at(model, step):
        return {f"eval/{stage}/{k}": v for k, v in evaluate(model, eval_shards, eval_loss, s, run.micro).items()}
    spec = run.spec(s.steps, lambda step: (stage, block_size), loss_at, eval_at)
    return spec
