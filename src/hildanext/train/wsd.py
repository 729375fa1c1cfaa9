# LLaDA2.0 Warmup-Stable-Decay conversion: the block-size schedule (warmup 1 -> 4 -> 32 -> 64, stable MDLM at
# the full sequence with the x0 half dropped, decay step by step down to the inference block size wsd.decay_to;
# one warning line when a phase shrinks the block more than 2x), the loss per step (CAP at wsd.decay_cap_weight
# in the decay phases), the eval at the phase's and the inference block size plus the clean M2T ranking eval.
# Entry points: Phase, wsd_phases, phase_of, phase_setup, ranking_key, diffusion_eval_loss, wsd_spec -> LoopSpec.
import logging
from dataclasses import dataclass
import numpy as np
from hildanext.config import ParamsError, WsdParams
from hildanext.data.loader import PackedShards
from hildanext.train.evaluate import evaluate
from hildanext.train.loop import LoopSpec
from hildanext.train.objective import ObjectiveSetup, diffusion_loss
from hildanext.train.setup import TrainRun
log = logging.getLogger(__name__)
@dataclass(frozen=True)
class Phase:
    name: str
    block_size: int
    mdlm: bool
    start: int
    steps: int

def per_phase(steps: tuple[int, ...], count: int, key: str) -> list[int]:
    if len(steps) not in (1, count):
        raise ParamsError(f"params.yaml: wsd.{key}: give 1 or {count} values, got {len(steps)}")
    return list(steps) * count if len(steps) == 1 else list(steps)

def decay_sizes(p: WsdParams, seq_len: int) -> list[int]:
    if p.decay_blocks:
        return list(p.decay_blocks)
    sizes, size = [], seq_len // 2
    while size > p.decay_to:
        sizes.append(size)
        size //= 2
    return sizes + [p.decay_to]

def wsd_phases(p: WsdParams, seq_len: int) -> list[Phase]:
    warmup = [b or seq_len for b in p.warmup_blocks]
    decay = decay_sizes(p, seq_len)
    for size in warmup + decay:
        if seq_len % size:
            raise ParamsError(f"params.yaml: wsd: block size {size} does not divide tokenize.seq_len {seq_len}")
    warmup_steps = per_phase(p.warmup_steps, len(warmup), "warmup_steps")
    decay_steps = per_phase(p.decay_steps, len(decay), "decay_steps")
    plan = [(f"warmup-{b}", b, b == seq_len, n) for b, n in zip(warmup, warmup_steps, strict=True)]
    plan += [(f"stable-{seq_len}", seq_len, True, p.stable_steps)] if p.stable_steps else []
    plan += [(f"decay-{b}", b, False, n) for b, n in zip(decay, decay_steps, strict=True)]
    phases, start = [], 0
    for name, block_size, mdlm, steps in plan:
        phases.append(Phase(name, block_size, mdlm, start, steps))
        start += steps
    warn_abrupt(phases)
    return phases

def warn_abrupt(phases: list[Phase]) -> None:
    pairs = zip(phases[:-1], phases[1:], strict=True)
    jumps = [f"{a.name} -> {b.name}" for a, b in pairs if a.block_size > 2 * b.block_size]
    if jumps:
        log.warning("wsd: the block size shrinks more than 2x at %s; LLaDA2.0 decays step by step "
                    "(leave wsd.decay_blocks empty to halve)", ", ".join(jumps))

def phase_of(phases: list[Phase], step: int) -> Phase:
    return next((ph for ph in phases if ph.start <= step < ph.start + ph.steps), phases[-1])

def unigram_accuracy(train: PackedShards, evals: PackedShards, max_rows: int = 10000) -> float:
    ids, docs = np.asarray(train.ids[:max_rows]), np.asarray(train.doc_ids[:max_rows])
    mode = np.bincount(ids[docs >= 0].astype(np.int64)).argmax()
    eval_ids, eval_docs = np.asarray(evals.ids), np.asarray(evals.doc_ids)
    return float((eval_ids[eval_docs >= 0] == mode).mean())

def ranking_key(decay_to: int) -> str:
    """The eval key ranking WSD checkpoints and merge candidates: the clean M2T loss at the inference block size."""
    return f"eval/clean_b{decay_to}/loss_m2t"

def phase_setup(setup: ObjectiveSetup, phase: Phase, p: WsdParams) -> ObjectiveSetup:
    """The training loss setup of a phase: its block size (None = MDLM), CAP only in the decay phases."""
    phased = setup.at(None if phase.mdlm else phase.block_size)
    return phased.with_cap(p.decay_cap_weight) if phase.name.startswith("decay-") else phased

def diffusion_eval_loss(setup: ObjectiveSetup):
    """The evaluate() loss of WSD and merge: diffusion_loss at setup.block_size (None = MDLM), no embedding noise."""
    def loss_fn(model, rows, gen, fixed_t):
        return diffusion_loss(model, rows, setup, gen, fixed_t=fixed_t)
    return loss_fn

def eval_at_step(run: TrainRun, model, phases: list[Phase], eval_shards: PackedShards, step: int) -> dict:
    p, phase = run.p, phase_of(phases, step)
    sizes = {p.decay_to, None if phase.mdlm else phase.block_size}
    out = {}
    for size in sizes:
        loss_fn = diffusion_eval_loss(run.loss_setup(size, p.block_align))
        tag = "mdlm" if size is None else f"b{size}"
        out |= {f"eval/{tag}/{k}": v for k, v in evaluate(model, eval_shards, loss_fn, p, run.micro).items()}
    clean = diffusion_eval_loss(run.loss_setup(p.decay_to, p.block_align).m2t_only())
    report = evaluate(model, eval_shards, clean, p, run.micro)
    return out | {f"eval/clean_b{p.decay_to}/{k}": report[k] for k in ("loss_m2t", "acc_m2t")}

def wsd_spec(run: TrainRun, phases: list[Phase], eval_shards: PackedShards) -> LoopSpec:
    setup, total = run.loss_setup(None, run.p.block_align), phases[-1].start + phases[-1].steps
    def loss_at(model, batch, step, micro):
        phase = phase_of(phases, step)
        rows, noise = (batch["input_ids"], batch["doc_ids"]), step < setup.objective.embed_noise_steps
        with run.context():
            return diffusion_loss(run.net, rows, phase_setup(setup, phase, run.p), run.generator(step, micro),
                                  noise=noise)
    def phase_at(step):
        return phase_of(phases, step).name, phase_of(phases, step).block_size
    return run.spec(total, phase_at, loss_at, lambda model, step: eval_at_step(run, model, phases, eval_shards, step))
