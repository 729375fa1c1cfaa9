# The tokenize stage and the shard loader: documents rebuilt from (input_ids, doc_ids) equal the prepared
# texts (real Qwen3 tokenizer and the demo tokenizer), long documents continue into the next row, output is
# deterministic, shards made with another tokenizer are refused in one line, and the loader resumes exactly.
import json, shutil
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from hildanext.data.demo_corpus import demo_stories
from hildanext.data.loader import PackedShards, ShardLoader
from hildanext.data.sources import DataError
from hildanext.data.demo_tokenizer import train_demo_tokenizer
from hildanext.files import sha256_file
from hildanext.pipeline import run_stage
def tokenizer_dir(workdir, qwen3_tokenizer_dir, which: str):
    out = workdir / "models/init"
    if which == "qwen3":
        shutil.copytree(qwen3_tokenizer_dir, out)
    else:
        train_demo_tokenizer(demo_stories(300, 5), 400).save_pretrained(out)
    return out

def rebuild(shards: PackedShards, tokenizer) -> list[str]:
    ids, doc_ids = np.asarray(shards.ids).reshape(-1), np.asarray(shards.doc_ids).reshape(-1)
    sep = shards.manifest["sep_id"]
    texts = []
    for d in range(doc_ids.max() + 1):
        tokens = ids[doc_ids == d]
        assert tokens[-1] == sep
        texts.append(tokenizer.decode(tokens[:-1].tolist()))
    return texts

@pytest.mark.parametrize("which", ["qwen3", "demo"])
def test_doc_ids_round_trip_to_prepared_documents(workdir, qwen3_tokenizer_dir, which):
    from transformers import AutoTokenizer
    tok_dir = tokenizer_dir(workdir, qwen3_tokenizer_dir, which)
    run_stage("prepare", "params.yaml", ["prepare.demo_stories=300", "prepare.eval_fraction=0.1"])
    run_stage("tokenize", "params.yaml", ["tokenize.seq_len=64", "tokenize.batch_docs=37"])
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    for split in ("train", "eval"):
        shards = PackedShards(workdir / "data/tokenized", split, tok_dir)
        prepared = pq.read_table(workdir / f"data/processed/{split}.parquet").column("text").to_pylist()
        assert rebuild(shards, tokenizer) == prepared
        flat = np.asarray(shards.doc_ids).reshape(-1)
        assert (shards.ids.shape[1] == 64 and np.all(np.diff(flat[flat >= 0]) >= 0)
                and np.all(flat[np.argmax(flat < 0):] == -1))
    metrics = json.loads((workdir / "metrics/data.json").read_text())
    assert metrics["splits"]["train"]["docs"] + metrics["splits"]["eval"]["docs"] == 300
    assert (metrics["splits"]["train"]["tokens"]
            + metrics["splits"]["train"]["pad_tokens"] == 64 * metrics["splits"]["train"]["rows"])
    assert metrics["splits"]["train"]["tokens/demo"] == metrics["splits"]["train"]["tokens"]
    manifest = json.loads((workdir / "data/tokenized/manifest.json").read_text())
    assert (manifest["tokenizer_sha256"] == sha256_file(tok_dir / "tokenizer.json")
            and manifest["vocab_size"] == len(tokenizer))

def test_long_document_continues_into_next_row_and_output_is_deterministic(workdir, qwen3_tokenizer_dir):
    tokenizer_dir(workdir, qwen3_tokenizer_dir, "qwen3")
    docs = [{"text": "word " * 300}, {"text": "A short second document here."}]
    (workdir / "long.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    overrides = ["prepare.sources=long.jsonl", "prepare.eval_fraction=0", "tokenize.seq_len=32"]
    run_stage("prepare", "params.yaml", overrides)
    run_stage("tokenize", "params.yaml", overrides)
    shards = PackedShards(workdir / "data/tokenized", "train")
    doc_ids = np.asarray(shards.doc_ids)
    assert ((doc_ids[:-1, -1] == doc_ids[1:, 0]).sum() >= 9 and doc_ids[-1, -1] == -1
            and set(np.unique(doc_ids)) == {-1, 0, 1})
    first = tuple(sha256_file(workdir / f"data/tokenized/train.{name}.bin") for name in ("input_ids", "doc_ids"))
    run_stage("tokenize", "params.yaml", overrides)
    assert first == (sha256_file(workdir / "data/tokenized/train.input_ids.bin"),
                     sha256_file(workdir / "data/tokenized/train.doc_ids.bin"))

def test_shards_from_another_tokenizer_are_refused(workdir, qwen3_tokenizer_dir):
    tokenizer_dir(workdir, qwen3_tokenizer_dir, "qwen3")
    run_stage("prepare", "params.yaml", ["prepare.demo_stories=40"])
    run_stage("tokenize", "params.yaml", [])
    other = workdir / "models/demo-tok"
    train_demo_tokenizer(demo_stories(100, 1), 400).save_pretrained(other)
    with pytest.raises(DataError) as err:
        PackedShards(workdir / "data/tokenized", "train", other)
    assert ("re-run the tokenize stage" in str(err.value) and "vocab 151669" in str(err.value)
            and "\n" not in str(err.value))

def test_loader_is_deterministic_and_resumes_exactly(workdir, qwen3_tokenizer_dir):
    tokenizer_dir(workdir, qwen3_tokenizer_dir, "qwen3")
    run_stage("prepare", "params.yaml", ["prepare.demo_stories=200", "prepare.eval_fraction=0"])
    run_stage("tokenize", "params.yaml", ["tokenize.seq_len=32"])
    shards = PackedShards(workdir / "data/tokenized", "train")
    loader = ShardLoader(shards, 4, seed=7)
    batches = [loader.next_batch() for _ in range(len(shards) // 4 + 3)]
    state = loader.state()
    after = [loader.next_batch()["input_ids"] for _ in range(5)]
    resumed = ShardLoader(shards, 4, seed=0)
    resumed.load_state(json.loads(json.dumps(state)))
    assert all(torch.equal(a, resumed.next_batch()["input_ids"]) for a in after)
    again = ShardLoader(shards, 4, seed=7)
    assert all(torch.equal(b["doc_ids"], again.next_batch()["doc_ids"]) for b in batches)
    epoch0 = torch.cat([b["input_ids"] for b in batches[: len(shards) // 4]])
    assert len({tuple(r.tolist()) for r in epoch0}) == len(epoch0) and batches[0]["input_ids"].dtype == torch.long
