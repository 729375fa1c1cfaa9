# Teacher data for distillation: sentence-end cuts from token offsets (hand example), openings cut at sentence
# ends and mid-sentence in the asked mix and length range, only from the texts given (the train split) and the
# same for the same seed; the teacher's batched left-padded greedy generate equals one-prompt generate, sampling
# repeats per seed; examples keep the prompt visible and supervise the teacher text to a block multiple; and the
# stage (slow, ci overlay) is resumable shard by shard, deterministic, never reads the eval split, then distils.
import json, os, shutil
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, Qwen3ForCausalLM
from hildanext.config import DistillDataParams, merge_overlay
from hildanext.data.distill_data import (cut_opening, generate_shard, openings, pack_examples, sentence_cuts,
                                         teacher_examples)
from hildanext.data.sources import DataError
from hildanext.pipeline import run_stage
def test_sentence_cuts_are_the_token_counts_ending_at_a_sentence_end():
    text = "The end. Cat! dog ran"
    offsets = [(0, 3), (3, 7), (7, 8), (8, 12), (12, 13), (13, 17), (17, 21)]
    assert sentence_cuts(offsets, text) == [3, 5]

def test_cut_opening_follows_the_mix_and_the_length_range():
    ids, rng = list(range(40)), np.random.default_rng(0)
    sentence = DistillDataParams(opening_tokens=(4, 20), sentence_share=1.0)
    cuts = [cut_opening(ids, [3, 9, 15, 30], sentence, rng) for _ in range(50)]
    assert {len(c[0]) for c in cuts} == {9, 15} and {c[1] for c in cuts} == {"sentence"}
    plain = DistillDataParams(opening_tokens=(4, 20), sentence_share=0.0)
    mid = [cut_opening(ids, [9], plain, rng) for _ in range(200)]
    assert {c[1] for c in mid} == {"mid"} and {len(c[0]) for c in mid} == set(range(4, 21))
    assert cut_opening(ids[:4], [2], sentence, rng) is None and cut_opening(ids[:8], [], sentence, rng)[1] == "mid"

@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return AutoTokenizer.from_pretrained(model_dir)

def test_openings_come_only_from_the_given_texts_in_the_asked_mix(tokenizer):
    from hildanext.data.demo_corpus import demo_stories
    texts = demo_stories(60, 11)
    p = DistillDataParams(continuations=300, opening_tokens=(4, 40), sentence_share=0.5, seed=3)
    found = openings(texts, tokenizer, p)
    decoded = [tokenizer.decode(o["prompt"]) for o in found]
    assert len(found) == 300 and all(any(t.startswith(d) for t in texts) for d in decoded)
    assert all(4 <= len(o["prompt"]) <= 40 for o in found)
    assert 0.35 < sum(o["cut"] == "sentence" for o in found) / 300 < 0.65
    assert all(d.rstrip()[-1] in ".!?\"" for d, o in zip(decoded, found, strict=True) if o["cut"] == "sentence")
    assert openings(texts, tokenizer, p) == found and openings(texts, tokenizer, DistillDataParams(
        continuations=300, opening_tokens=(4, 40), seed=4)) != found
    with pytest.raises(DataError, match="the train split: only 0 openings"):
        openings(["too short"], tokenizer, DistillDataParams(continuations=2, opening_tokens=(30, 40)))

def test_batched_greedy_generate_equals_one_prompt_generate_and_sampling_repeats(model_dir, tokenizer):
    teacher = Qwen3ForCausalLM.from_pretrained(model_dir).eval()
    prompts = [{"kind": "continuation", "cut": "mid", "prompt": tokenizer(t)["input_ids"]}
               for t in ("Once upon a time", "The dog ran to the big red", "A cat")]
    p = DistillDataParams(new_tokens=6, batch_size=4)
    shard = generate_shard(teacher, tokenizer, prompts, p, seed=0)
    stops = [tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>")]
    for record in shard["records"]:
        alone = teacher.generate(torch.tensor([record["prompt"]]), max_new_tokens=6, do_sample=False,
                                 eos_token_id=stops, pad_token_id=stops[0], suppress_tokens=[tokenizer.mask_token_id])
        new = alone[0, len(record["prompt"]) :].tolist()
        assert record["output"] == new[: next((k + 1 for k, t in enumerate(new) if t in stops), len(new))]
    assert shard["tokens"] == sum(len(r["output"]) for r in shard["records"]) > 0
    hot = DistillDataParams(new_tokens=6, batch_size=2, temperature=1.0)
    runs = [generate_shard(teacher, tokenizer, prompts, hot, seed)["records"] for seed in (5, 5, 6)]
    assert runs[0] == runs[1] != runs[2]

def test_examples_supervise_the_teacher_text_to_a_block_multiple(tmp_path):
    ids, supervised = teacher_examples({"prompt": [5, 6, 7], "output": [8, 9]}, 4, 0)
    assert ids.tolist() == [5, 6, 7, 8, 9, 0, 0, 0] and supervised.tolist() == [False] * 3 + [True] * 5
    records = [{"prompt": [1] * 3, "output": [2] * 3, "split": s} for s in ("train", "train", "eval")]
    stats = pack_examples(records + [{"prompt": [1] * 20, "output": [2], "split": "train"}], 16, 4, 0, tmp_path)
    assert stats["train"]["examples"] == 2 and stats["eval"]["examples"] == 1 and stats["skipped"] == 1

@pytest.fixture(scope="module")
def merged_root(tmp_path_factory, repo_root):
    root = tmp_path_factory.mktemp("distill")
    shutil.copy(repo_root / "params.yaml", root / "params.yaml")
    merge_overlay(root / "params.yaml", repo_root / "overlays/ci.yaml")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for stage in ("demo_base", "init", "prepare", "tokenize", "wsd", "merge"):
            run_stage(stage)
    finally:
        os.chdir(cwd)
    return root

@pytest.mark.slow
def test_distill_data_resumes_by_shard_never_reads_eval_and_distill_lowers_loss(merged_root, monkeypatch, capsys):
    import pyarrow.parquet as pq
    monkeypatch.chdir(merged_root)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    first = run_stage("distill_data")
    [folder] = (merged_root / "data/distill/shards").iterdir()
    shards = sorted(folder.glob("shard-*.json"))
    assert first["shards"] == first["shards_generated"] == len(shards) == 2 and first["teacher_tokens_per_s"] > 0
    before = [json.loads(s.read_text()) for s in shards]
    shards[1].unlink()
    again = run_stage("distill_data")
    assert again["shards_generated"] == 1 and json.loads(shards[1].read_text())["records"] == before[1]["records"]
    evals = pq.read_table(merged_root / "data/processed/eval.parquet").column("text").to_pylist()
    tokenizer = AutoTokenizer.from_pretrained(merged_root / "models/init")
    prompts = [tokenizer.decode(r["prompt"]) for s in before for r in s["records"]]
    trains = pq.read_table(merged_root / "data/processed/train.parquet").column("text").to_pylist()
    assert all(any(t.startswith(p) for t in trains) for p in prompts)
    assert not [p for p in prompts if any(e.startswith(p) for e in evals) and not any(t.startswith(p) for t in trains)]
    out = run_stage("distill")
    report = json.loads((merged_root / "metrics/distill.json").read_text())
    assert report["final"]["eval/distill/loss_m2t"] < report["start"]["loss_m2t"] and out["final/eval/distill/loss_cap"]
    header = (merged_root / "metrics/distill_log.csv").read_text().splitlines()[0].split(",")
    assert {"loss_m2t", "loss_kd", "loss_mtf"} <= set(header) and report["teacher"] == "models/demo-base"
    assert json.loads((merged_root / "models/distilled/hildanext.json").read_text())["stage"] == "distill"
