# Top-k merge: the merged weights equal the element-wise mean of the chosen state dicts, only checkpoints of
# the final WSD phase (with an eval score) are candidates, ranked by eval loss, and a missing final phase
# stops with one clear message. The stage itself runs end to end in test_wsd.py and the DVC test.
import json
import pytest
import torch
from conftest import make_tiny_qwen3
from hildanext.train.merge import MergeError, average_state_dicts, final_phase_candidates
from hildanext.train.checkpoints import Checkpoints
KEY = "eval/b32/loss_m2t"
def fake_checkpoint(root, step, phase, loss=None):
    path = root / f"ckpt-{step:07d}"
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"step": step, "phase": phase,
                                                         "eval": {KEY: loss} if loss is not None else {}}))
    return path

def test_average_is_the_elementwise_mean(tmp_path):
    models = [make_tiny_qwen3(seed=s) for s in range(3)]
    for i, model in enumerate(models):
        model.save_pretrained(tmp_path / f"m{i}")
    merged = average_state_dicts([tmp_path / f"m{i}" for i in range(3)])
    name = "model.layers.0.self_attn.q_proj.weight"
    expected = (models[0].state_dict()[name] + models[1].state_dict()[name] + models[2].state_dict()[name]) / 3
    torch.testing.assert_close(merged[name], expected)
    assert set(merged) == {k for k in models[0].state_dict() if k != "lm_head.weight"}

def test_only_final_phase_checkpoints_ranked_by_loss(tmp_path):
    fake_checkpoint(tmp_path, 10, "stable-128", 0.1)
    fake_checkpoint(tmp_path, 20, "decay-32", 0.9)
    fake_checkpoint(tmp_path, 30, "decay-32", 0.5)
    fake_checkpoint(tmp_path, 40, "decay-32")
    chosen = final_phase_candidates(Checkpoints(tmp_path, 1, 0, KEY), "decay-32")
    assert [c.name for c in chosen] == ["ckpt-0000030", "ckpt-0000020"]
    with pytest.raises(MergeError, match="no checkpoint of the final WSD phase 'decay-16'"):
        final_phase_candidates(Checkpoints(tmp_path, 1, 0, KEY), "decay-16")
