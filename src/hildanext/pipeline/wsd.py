# The wsd stage (`hildanext wsd`): models/init + data/tokenized -> models/wsd/ckpt-* and models/wsd/final by
# Warmup-Stable-Decay conversion with M2T+T2T, resuming only when the fingerprint matches; metrics/wsd.json
# (final eval at wsd.decay_to with the clean M2T that ranks checkpoints, M2T accuracy at mask rate 0.5 beside
# the unigram baseline, the phases) and metrics/wsd_log.csv. Entry points: job(params), resume_run_id(params),
# run(params, tracker).
from pathlib import Path
from hildanext.config import Params, as_dict
from hildanext.data.loader import PackedShards
from hildanext.model import check_model_folder
from hildanext.pipeline import paths, training
from hildanext.train import wsd
from hildanext.train.adapters import merged_model
from hildanext.train.evaluate import evaluate
from hildanext.train.setup import TrainJob
def job(params: Params) -> TrainJob:
    inputs = (Path(__file__), Path(wsd.__file__), paths.INIT / "hildanext.json", paths.TOKENIZED / "manifest.json")
    sections = (as_dict(params.wsd), as_dict(params.objective), as_dict(params.tokenize), params.runtime.seed)
    return TrainJob("wsd", paths.INIT, paths.WSD, paths.log_csv("wsd"), wsd.ranking_key(params.wsd.decay_to),
                    sections, inputs)

def resume_run_id(params: Params) -> str | None:
    return training.resume_run_id(job(params), params, paths.TOKENIZED / "manifest.json")

def run(params: Params, tracker) -> dict:
    check_model_folder(paths.INIT)
    shards = tuple(PackedShards(paths.TOKENIZED, split, paths.INIT) for split in ("train", "eval"))
    phases = wsd.wsd_phases(params.wsd, shards[0].seq_len)
    train = training.start(job(params), params.wsd, params, shards[0])
    spec = wsd.wsd_spec(train, phases, shards[1])
    state = train.train(spec, tracker)
    if not train.tracked:
        return {}
    model, p = merged_model(train.model, paths.INIT, params.runtime), params.wsd
    loss_fn = wsd.diffusion_eval_loss(train.loss_setup(p.decay_to, p.block_align))
    half = evaluate(model, shards[1], loss_fn, p, train.micro, fixed_t=0.5)
    final = state["eval"] | {"acc_m2t_mask0.5": half["acc_m2t"], "unigram_acc": wsd.unigram_accuracy(*shards)}
    extra = {"final": final, "phases": [as_dict(ph) for ph in phases]}
    return training.finish(train, model, paths.WSD / "final", spec.total_steps, extra)
