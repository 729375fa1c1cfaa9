# The sft stage (`hildanext sft`): models/merged + data/sft -> models/sft by the LLaDA2.1 SFT mixture in BDLM at
# the trained block size wsd.decay_to (checkpoints in models/sft_ckpts, resumed when the fingerprint matches);
# held-out loss before and after in metrics/sft.json, per-step losses in metrics/sft_log.csv.
# Entry points: job(params), resume_run_id(params), run(params, tracker).
from pathlib import Path
from hildanext.config import Params, ParamsError, as_dict
from hildanext.data.sft_data import SftShards
from hildanext.model import check_model_folder
from hildanext.pipeline import paths, training
from hildanext.train import sft
from hildanext.train.adapters import merged_model
from hildanext.train.evaluate import evaluate
from hildanext.train.setup import TrainJob
def job(params: Params) -> TrainJob:
    inputs = (Path(__file__), Path(sft.__file__), paths.MERGED / "hildanext.json", paths.SFT_DATA / "manifest.json")
    sections = (as_dict(params.sft), as_dict(params.objective), params.wsd.decay_to, params.runtime.seed)
    return TrainJob("sft", paths.MERGED, paths.SFT_CKPTS, paths.log_csv("sft"), sft.BEST_KEY, sections, inputs)

def resume_run_id(params: Params) -> str | None:
    return training.resume_run_id(job(params), params, paths.SFT_DATA / "manifest.json")

def held_out(tokenizer_dir: Path) -> SftShards:
    shards = SftShards(paths.SFT_DATA, "eval", tokenizer_dir)
    if len(shards) == 0:
        print("sft: the eval split is empty; evaluating on the first train rows instead")
        return SftShards(paths.SFT_DATA, "train", tokenizer_dir)
    return shards

def run(params: Params, tracker) -> dict:
    block, tokenizer_dir = params.wsd.decay_to, Path(params.sft_data.tokenizer)
    check_model_folder(paths.MERGED)
    train_shards, eval_shards = SftShards(paths.SFT_DATA, "train", tokenizer_dir), held_out(tokenizer_dir)
    if train_shards.manifest["block_size"] != block:
        raise ParamsError(f"params.yaml: wsd.decay_to {block} differs from data/sft's block size "
                          f"{train_shards.manifest['block_size']}; re-run the sft_data stage")
    train = training.start(job(params), params.sft, params, train_shards)
    teacher = training.load_teacher(params, train.model.device) if params.sft.kd_weight > 0 else None
    spec = sft.sft_spec(train, eval_shards, block, teacher)
    loss_fn = sft.sft_eval_loss(sft.sft_setup(train, block), params.sft)
    if train.latest is None:
        train.state = train.state | {"start_eval": evaluate(train.model, eval_shards, loss_fn, params.sft, train.micro)}
    train.state = {"start_eval": {}} | train.state
    state = train.train(spec, tracker)
    if not train.tracked:
        return {}
    model = merged_model(train.model, paths.MERGED, params.runtime)
    return training.finish(train, model, paths.SFT, spec.total_steps, {"start": state["start_eval"]})
