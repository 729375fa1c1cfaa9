# Top-k merge: the merged weights equal the element-wise mean of the chosen state dicts, only checkpoints of
# the final WSD phase (with an eval score) are candidates, ranked by eval loss, a missing final phase stops
# with one clear message, and retention over real saves across 3 phases keeps the final phase's best k plus the
# last N (earlier phases only by the last N, optimizer state only in the latest). The stage itself runs end to
# end in test_wsd.py and the DVC test.
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

def test_retention_keeps_the_final_phase_best_and_only_the_last_of_earlier_phases(tmp_path):
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models
    model = make_tiny_qwen3()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0}, unk_token="a")))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ckpts = Checkpoints(tmp_path, keep_last=2, keep_best=3, best_key=KEY)
    saves = [(2, "warmup-4", 0.05), (4, "warmup-4", 0.04), (6, "stable-8", 0.01), (8, "stable-8", 0.6),
             (10, "stable-8", 0.7), (12, "decay-4", 0.5), (14, "decay-4", 0.2), (16, "decay-4", 0.9),
             (18, "decay-4", 0.3), (20, "decay-4", 0.8)]
    kept = {}
    for step, phase, loss in saves:
        ckpts.save(model, tokenizer, optimizer, {"step": step, "phase": phase, "eval": {KEY: loss}})
        kept[step] = [int(c.name.removeprefix("ckpt-")) for c in ckpts.all()]
    assert kept[10] == [6, 8, 10] and kept[20] == [12, 14, 18, 20]
    assert [c.name for c in ckpts.all() if (c / "optimizer.pt").exists()] == ["ckpt-0000020"]
    assert ckpts.best().name == "ckpt-0000014"
    chosen = final_phase_candidates(ckpts, "decay-4")[:3]
    assert [c.name for c in chosen] == ["ckpt-0000014", "ckpt-0000018", "ckpt-0000012"]
