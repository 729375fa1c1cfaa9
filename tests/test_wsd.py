# The WSD schedule and stage on the demo pipeline (ci overlay): block size per step, one warning for a decay that
# shrinks the block more than 2x, enough final-phase checkpoints for the merge (demo and gtx1080), LR shape,
# checkpoints and metrics, exact resume after an interruption (same loss trajectory, same MLflow run, the runtime
# profile resolved once for the resume lookup and the run), refusal to resume under changed params, and a NaN
# loss stopping with the last good checkpoint kept.
import csv, json, logging, shutil
import pytest
import torch
from hildanext.train import loop as train
from hildanext.config import ParamsError, WsdParams, load_params, merge_overlay
from hildanext.pipeline import run_stage
from hildanext.train.loop import TrainingError
from hildanext.train.profiles import resolve_profile
from hildanext.train.schedule import train_lr
from hildanext.train.wsd import phase_of, wsd_phases
def test_schedule_gives_the_configured_block_size_at_each_step():
    p = WsdParams(warmup_blocks=(1, 4, 0), warmup_steps=(2, 3, 1), stable_steps=2, decay_to=8, decay_steps=(1,))
    phases = wsd_phases(p, 32)
    sizes = [phase_of(phases, s).block_size for s in range(11)]
    assert [ph.name for ph in phases] == ["warmup-1", "warmup-4", "warmup-32", "stable-32", "decay-16", "decay-8"]
    assert (sizes == [1, 1, 4, 4, 4, 32, 32, 32, 16, 8, 8]
            and [ph.mdlm for ph in phases] == [False, False, True, True, False, False])
    with pytest.raises(ParamsError, match="block size 12 does not divide tokenize.seq_len 32"):
        wsd_phases(WsdParams(warmup_blocks=(12,)), 32)
    with pytest.raises(ParamsError, match="wsd.warmup_steps: give 1 or 4 values, got 2"):
        wsd_phases(WsdParams(warmup_steps=(1, 2)), 128)

def test_a_decay_that_shrinks_the_block_more_than_2x_warns_once_and_halving_does_not(caplog):
    with caplog.at_level(logging.WARNING, logger="hildanext.train.wsd"):
        abrupt = wsd_phases(WsdParams(stable_steps=10, decay_blocks=(64, 32)), 1024)
    assert [ph.block_size for ph in abrupt][-3:] == [1024, 64, 32] and len(caplog.records) == 1
    assert "stable-1024 -> decay-64" in caplog.records[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hildanext.train.wsd"):
        halving = wsd_phases(WsdParams(stable_steps=10), 1024)
    assert [ph.block_size for ph in halving][-6:] == [1024, 512, 256, 128, 64, 32] and caplog.records == []

def final_phase_checkpoint_steps(phases, every: int) -> list[int]:
    """Steps the loop checkpoints with the final phase's name: every `every` steps inside it, and at its end."""
    start, end = phases[-1].start, phases[-1].start + phases[-1].steps
    return [s for s in range(start + 1, end + 1) if s % every == 0 or s == end]

@pytest.mark.parametrize("overlay, expected", [(None, list(range(10, 361, 10))),
                                               ("gtx1080.yaml", [4625, 4750, 4875, 5000])])
def test_the_final_phase_offers_the_merge_top_k_checkpoints(tmp_path, repo_root, overlay, expected):
    path = tmp_path / "params.yaml"
    shutil.copy(repo_root / "params.yaml", path)
    params = merge_overlay(path, repo_root / "overlays" / overlay) if overlay else load_params(path)
    phases = wsd_phases(params.wsd, params.tokenize.seq_len)
    steps = final_phase_checkpoint_steps(phases, params.wsd.checkpoint_every)
    assert phases[-1].name == "decay-32" and steps == expected and len(steps) >= params.merge.top_k

def test_lr_warmup_then_constant_or_decay():
    p = WsdParams(lr=1e-3, lr_warmup_steps=4)
    assert [round(train_lr(s, p, 20), 6) for s in (0, 3, 4, 19)] == [0.00025, 0.001, 0.001, 0.001]
    cosine = WsdParams(lr=1e-3, lr_warmup_steps=0, lr_decay="cosine", min_lr_ratio=0.1)
    assert train_lr(0, cosine, 10) == pytest.approx(1e-3) and train_lr(10, cosine, 10) == pytest.approx(1e-4)

@pytest.fixture(scope="module")
def demo_inputs(tmp_path_factory, repo_root):
    import os
    root = tmp_path_factory.mktemp("wsd")
    shutil.copy(repo_root / "params.yaml", root / "params.yaml")
    merge_overlay(root / "params.yaml", repo_root / "overlays/ci.yaml")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for stage in ("demo_base", "init", "prepare", "tokenize"):
            run_stage(stage)
    finally:
        os.chdir(cwd)
    return root

@pytest.fixture
def wsd_dir(demo_inputs, tmp_path, monkeypatch):
    for name in ("params.yaml", "models", "data"):
        (shutil.copytree if (demo_inputs / name).is_dir() else shutil.copy)(demo_inputs / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return tmp_path

def losses(root):
    with open(root / "metrics/wsd_log.csv") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}

def interrupt_at(monkeypatch, stop_step, error=KeyboardInterrupt):
    real = train.optimizer_step
    def stopping(model, optimizer, spec, step, batches):
        if step == stop_step:
            if error is KeyboardInterrupt:
                raise error("interrupted by the test")
            raise error(f"loss is nan at step {step}")
        return real(model, optimizer, spec, step, batches)
    monkeypatch.setattr(train, "optimizer_step", stopping)
    return real

def test_wsd_stage_writes_checkpoints_final_and_metrics(wsd_dir, capsys):
    metrics = run_stage("wsd")
    report = json.loads((wsd_dir / "metrics/wsd.json").read_text())
    names = sorted(p.name for p in (wsd_dir / "models/wsd").iterdir())
    assert names[-1] == "final" and len(names) <= 1 + 2 + 1 and report["steps"] == 18
    assert set(metrics) == {"final/eval/b32/loss_m2t", "final/eval/b32/loss_t2t", "final/eval/b32/acc_m2t",
                            "final/eval/clean_b32/loss_m2t", "final/eval/clean_b32/acc_m2t",
                            "final/acc_m2t_mask0.5", "final/unigram_acc"}
    meta = json.loads((wsd_dir / "models/wsd/final/hildanext.json").read_text())
    assert meta["block_size"] == 32 and meta["stage"] == "wsd" and meta["mask_id"] is not None
    assert sorted(losses(wsd_dir)) == [0, 2, 5, 8, 10, 11, 14, 15, 17]
    params = load_params(wsd_dir / "params.yaml")
    expected = final_phase_checkpoint_steps(wsd_phases(params.wsd, 64), params.wsd.checkpoint_every)
    assert names[:-1] == [f"ckpt-{s:07d}" for s in expected] == ["ckpt-0000016", "ckpt-0000018"]
    capsys.readouterr()
    merged = run_stage("merge")
    out = capsys.readouterr().out
    assert "merge: only 2 checkpoint(s) of the final phase decay-32 for merge.top_k 3; averaging 2" in out
    merge = json.loads((wsd_dir / "metrics/merge.json").read_text())
    states = {c: json.loads((wsd_dir / "models/wsd" / c / "trainer_state.json").read_text()) for c in merge["chosen"]}
    assert merged["k"] == len(merge["chosen"]) == merge["candidates"] == 2 and merge["top_k"] == 3
    assert {s["phase"] for s in states.values()} == {"decay-32"}
    assert merge["best_single_loss_m2t"] == min(s["eval"]["eval/clean_b32/loss_m2t"] for s in states.values())
    assert json.loads((wsd_dir / "models/merged/hildanext.json").read_text())["stage"] == "merge"
    phases = ["warmup-1", "warmup-4", "warmup-32", "warmup-64", "stable-64", "decay-32"]
    assert [p["name"] for p in report["phases"]] == phases

@pytest.mark.parametrize("extra", [[], ["runtime.adapter=lora", "lora.r=4"]], ids=["full", "lora"])
def test_resume_continues_the_same_trajectory_and_run(wsd_dir, tmp_path_factory, monkeypatch, extra):
    reference = tmp_path_factory.mktemp("reference")
    for name in ("params.yaml", "models", "data"):
        (shutil.copytree if (wsd_dir / name).is_dir() else shutil.copy)(wsd_dir / name, reference / name)
    real = interrupt_at(monkeypatch, 9)
    with pytest.raises(KeyboardInterrupt):
        run_stage("wsd", "params.yaml", ["runtime.log_every=1", *extra])
    assert max(losses(wsd_dir)) == 8 and (wsd_dir / "models/wsd/ckpt-0000009").exists()
    monkeypatch.setattr(train, "optimizer_step", real)
    resolve_profile.cache_clear()
    run_stage("wsd", "params.yaml", ["runtime.log_every=1", *extra])
    asked = resolve_profile.cache_info()
    assert asked.misses == 1 and asked.hits >= 1, asked
    monkeypatch.chdir(reference)
    run_stage("wsd", "params.yaml", ["runtime.log_every=1", *extra])
    resumed, straight = losses(wsd_dir), losses(reference)
    assert sorted(resumed) == sorted(straight) == list(range(18))
    assert all(abs(resumed[s] - straight[s]) < 1e-5 for s in range(18)), (resumed, straight)
    import mlflow
    mlflow.set_tracking_uri(f"sqlite:///{wsd_dir}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["hildanext"])
    top = runs[runs["tags.mlflow.parentRunId"].isna() & (runs["tags.mlflow.runName"] == "wsd")]
    assert len(top) == 1 and top["status"].iloc[0] == "FINISHED"
    phases = {"warmup-1", "warmup-4", "warmup-32", "warmup-64", "stable-64", "decay-32"}
    assert set(runs["tags.mlflow.runName"]) >= phases

def test_changed_params_refuse_to_resume(wsd_dir, monkeypatch, capsys):
    real = interrupt_at(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        run_stage("wsd")
    assert (wsd_dir / "models/wsd/ckpt-0000006").exists()
    monkeypatch.setattr(train, "optimizer_step", real)
    interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        run_stage("wsd", "params.yaml", ["wsd.lr=0.002"])
    out = capsys.readouterr().out
    assert "trained with other params or inputs" in out and not (wsd_dir / "models/wsd/ckpt-0000006").exists()

def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(wsd_dir, monkeypatch):
    interrupt_at(monkeypatch, 7, TrainingError)
    with pytest.raises(TrainingError) as err:
        run_stage("wsd")
    assert "loss is nan at step 7" in str(err.value) and "ckpt-0000006" in str(err.value)
    assert (wsd_dir / "models/wsd/ckpt-0000006/model.safetensors").exists()

@pytest.mark.slow
def test_demo_preset_conversion_beats_unigram_baseline(workdir):
    for stage in ("demo_base", "init", "prepare", "tokenize", "wsd"):
        run_stage(stage)
    final = json.loads((workdir / "metrics/wsd.json").read_text())["final"]
    assert final["acc_m2t_mask0.5"] > final["unigram_acc"] + 0.2, final
    with open(workdir / "metrics/wsd_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["loss_m2t"]) < float(rows[0]["loss_m2t"]) / 2

def test_profile_knobs_run_on_cpu(wsd_dir):
    overrides = ["runtime.micro_batch=2", "runtime.grad_ckpt=true", "runtime.train_embeddings=mask_row",
                 "wsd.stable_steps=0"]
    run_stage("wsd", "params.yaml", overrides)
    import mlflow
    mlflow.set_tracking_uri(f"sqlite:///{wsd_dir}/mlflow.db")
    run = mlflow.search_runs(experiment_names=["hildanext"], filter_string="tags.`hildanext.stage` = 'wsd'").iloc[0]
    resolved = tuple(run[f"params.resolved.{k}"] for k in ("micro_batch", "grad_ckpt", "train_embeddings"))
    assert resolved == ("2", "True", "mask_row")
    assert json.loads((wsd_dir / "metrics/wsd.json").read_text())["steps"] == 15

def test_lora_training_touches_only_adapters_and_the_mask_row_and_merges(wsd_dir):
    from safetensors.torch import load_file
    run_stage("wsd", "params.yaml", ["runtime.adapter=lora", "lora.r=4", "lora.target_modules=[q_proj, v_proj]",
                                     "wsd.stable_steps=0", "wsd.lr=0.01"])
    ckpts = sorted((wsd_dir / "models/wsd").glob("ckpt-*"))
    assert ckpts and all((c / "adapter_config.json").exists() and not (c / "model.safetensors").exists() for c in ckpts)
    init, final = (load_file(wsd_dir / f"models/{name}/model.safetensors") for name in ("init", "wsd/final"))
    mask_id = json.loads((wsd_dir / "models/init/hildanext.json").read_text())["mask_id"]
    embed = "model.embed_tokens.weight"
    changed = {k for k in init if not torch.equal(init[k], final[k])}
    assert (changed == {embed}
            | {f"model.layers.{i}.self_attn.{m}.weight" for i in range(2) for m in ("q_proj", "v_proj")})
    rows = (init[embed] != final[embed]).any(dim=1).nonzero().flatten().tolist()
    assert rows == [mask_id]
    merged = run_stage("merge", "params.yaml", ["runtime.adapter=lora", "merge.top_k=2"])
    assert merged["k"] >= 1 and (wsd_dir / "models/merged/model.safetensors").exists()
