# LLaDA2.1 SFT as a loop spec: the SFT mixture (M2T on masked response tokens, T2T on corrupted ones, KEEP,
# optional complementary masks, MTF, CAP at sft.cap_weight) in BDLM at the trained block size, through the
# same setup, loop, checkpoints and resume as WSD, with eval on held-out chats. Entry points: sft_eval_loss,
# sft_setup, sft_spec(run, eval_shards, block_size) -> LoopSpec.
from hildanext.config import SftParams
from hildanext.data.sft_data import SftShards
from hildanext.train.evaluate import evaluate
from hildanext.train.loop import LoopSpec
from hildanext.train.objective import ObjectiveSetup, sft_loss
from hildanext.train.setup import TrainRun
BEST_KEY = "eval/sft/loss_m2t"
def sft_eval_loss(setup: ObjectiveSetup, s: SftParams):
    """The evaluate() loss of SFT: sft_loss at setup.block_size over (input_ids, doc_ids, supervised) rows."""
    def loss_fn(model, rows, gen, fixed_t):
        return sft_loss(model, rows, setup, s, gen, fixed_t=fixed_t)
    return loss_fn

def sft_setup(run: TrainRun, block_size: int) -> ObjectiveSetup:
    """The SFT loss setup: BDLM at block_size with CAP at sft.cap_weight (train and eval alike)."""
    return run.loss_setup(block_size).with_cap(run.p.cap_weight)

def sft_spec(run: TrainRun, eval_shards: SftShards, block_size: int) -> LoopSpec:
    s, setup = run.p, sft_setup(run, block_size)
    eval_loss = sft_eval_loss(setup, s)
    def loss_at(model, batch, step, micro):
        rows = batch["input_ids"], batch["doc_ids"], batch["supervised"]
        with run.context():
            return sft_loss(run.net, rows, setup, s, run.generator(step, micro))
    def eval_at(model, step):
        return {f"eval/sft/{k}": v for k, v in evaluate(model, eval_shards, eval_loss, s, run.micro).items()}
    return run.spec(s.steps, lambda step: ("sft", block_size), loss_at, eval_at)
