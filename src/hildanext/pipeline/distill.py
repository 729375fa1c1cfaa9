# The distill stage (`hildanext distill`): models/merged + data/distill -> models/distilled by the SFT mixture on
# the AR teacher's text (sequence-level KD) with the distillation terms of params.distill (logit KD from the AR
# base loaded frozen beside the student, semi-AR decoder states, T2T from drafts, CAP at a temperature), through
# the one loop (checkpoints in models/distill_ckpts, resumed when the fingerprint matches); metrics/distill.json
# and metrics/distill_log.csv. Entry points: job(params), resume_run_id(params), run(params, tracker).
from pathlib import Path
from hildanext.config import Params, ParamsError, as_dict
from hildanext.data.distill_data import DistillShards
from hildanext.model import check_model_folder
from hildanext.pipeline import paths, training
from hildanext.train import sft
from hildanext.train.adapters import merged_model
from hildanext.train.evaluate import evaluate
from hildanext.train.setup import TrainJob
ROWS = paths.DISTILL_DATA / "rows"
def job(params: Params) -> TrainJob:
    inputs = (Path(__file__), Path(sft.__file__), paths.MERGED / "hildanext.json", ROWS / "manifest.json")
    sections = (as_dict(params.distill), as_dict(params.objective), params.wsd.decay_to, params.runtime.seed,
                params.model.base)
    return TrainJob("distill", paths.MERGED, paths.DISTILL_CKPTS, paths.log_csv("distill"), sft.best_key("distill"),
                    sections, inputs)

def resume_run_id(params: Params) -> str | None:
    return training.resume_run_id(job(params), params, ROWS / "manifest.json")

def shards(tokenizer_dir: Path, block: int) -> tuple[DistillShards, DistillShards]:
    train = DistillShards(ROWS, "train", tokenizer_dir)
    if train.manifest["block_size"] != block:
        raise ParamsError(f"params.yaml: wsd.decay_to {block} differs from data/distill's block size "
                          f"{train.manifest['block_size']}; re-run the distill_data stage")
    held = DistillShards(ROWS, "eval", tokenizer_dir)
    if len(held) == 0:
        print("distill: the eval split is empty; evaluating on the first train rows instead")
    return train, held if len(held) else train

def run(params: Params, tracker) -> dict:
    block, tokenizer_dir = params.wsd.decay_to, Path(params.sft_data.tokenizer)
    check_model_folder(paths.MERGED)
    train_shards, eval_shards = shards(tokenizer_dir, block)
    train = training.start(job(params), params.distill, params, train_shards)
    teacher = training.load_teacher(params, train.model.device) if params.distill.kd_weight > 0 else None
    spec = sft.sft_spec(train, eval_shards, block, teacher)
    loss_fn = sft.sft_eval_loss(sft.sft_setup(train, block), params.distill)
    if train.latest is None:
        train.state = train.state | {"start_eval": evaluate(train.model, eval_shards, loss_fn, params.distill,
                                                             train.micro)}
    train.state = {"start_eval": {}} | train.state
    state = train.train(spec, tracker)
    if not train.tracked:
        return {}
    model = merged_model(train.model, paths.MERGED, params.runtime)
    extra = {"start": state["start_eval"], "teacher": str(paths.base_folder(params)) if teacher is not None else None}
    return training.finish(train, model, paths.DISTILLED, spec.total_steps, extra)
