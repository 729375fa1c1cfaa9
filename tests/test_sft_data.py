# SFT data (issue 6): on a hand-written 3-turn chat, the supervised positions decode to exactly the assistant
# messages + <|im_end|> (+ <|endoftext|> block padding) with the real Qwen3 tokenizer and the demo tokenizer;
# bad records are counted by reason; the demo set is deterministic; packing keeps chats whole and block-aligned;
# the split is disjoint; the sft_data stage writes a manifest and SftShards/ShardLoader round-trip and resume.
import itertools, json, os, re, shutil, subprocess, sys
from collections import Counter
from pathlib import Path
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer
from hildanext.config import SftDataParams, load_params
from hildanext.data.chat import Chat, chat_messages, demo_chats, iter_chats, read_chat_jsonl
from hildanext.data.demo_corpus import demo_stories
from hildanext.data.loader import ShardLoader
from hildanext.data.sft_data import SftPacker, SftShards, assistant_spans, encode_chats, split_of
from hildanext.data.sources import DataError
from hildanext.data.demo_tokenizer import train_demo_tokenizer
from hildanext.files import sha256_file
from hildanext.train.masks import block_index
from hildanext.pipeline import run_stage, sft_data
REPO = Path(__file__).resolve().parents[1]
SYSTEM, USERS = "You answer briefly.", ("What is 6 times 7?", "Name two colours.", "Say hi in French.")
ANSWERS = ("42 is the answer: 6 × 7 = 42.", "- red\n- blue", "Bonjour ! Café? 😀")
def three_turn_chat() -> tuple[dict, ...]:
    turns = [{"role": "system", "content": SYSTEM}]
    for user, answer in zip(USERS, ANSWERS, strict=True):
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return tuple(turns)

def expected_segments(pad: int) -> list[tuple[bool, str]]:
    """Qwen3's render written out by hand: earlier assistant turns without a think block, the last with an empty one."""
    head = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
    prompts = [f"{head if i == 0 else chr(10)}<|im_start|>user\n{u}<|im_end|>\n<|im_start|>assistant\n"
               for i, u in enumerate(USERS)]
    prompts[-1] += "<think>\n\n</think>\n\n"
    answers = [a + "<|im_end|>" for a in ANSWERS]
    answers[-1] += "<|endoftext|>" * pad
    return [seg for pair in zip(((False, p) for p in prompts), ((True, a) for a in answers),
                                strict=True) for seg in pair]

def runs(tokenizer, ids, supervised) -> list[tuple[bool, str]]:
    groups = itertools.groupby(zip(ids.tolist(), supervised.tolist(), strict=True), key=lambda pair: pair[1])
    return [(bool(flag), tokenizer.decode([i for i, _ in group])) for flag, group in groups]

@pytest.fixture(scope="module")
def demo_tokenizer():
    return train_demo_tokenizer(demo_stories(200, 3), 400)

@pytest.fixture
def tokenizer(request, qwen3_tokenizer_dir, demo_tokenizer):
    return AutoTokenizer.from_pretrained(qwen3_tokenizer_dir) if request.param == "qwen3" else demo_tokenizer

@pytest.mark.parametrize("tokenizer", ["qwen3", "demo"], indirect=True)
def test_three_turn_chat_supervises_exactly_the_assistant_turns(tokenizer):
    skips, pad_id = Counter(), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    [(_, ids, supervised)] = encode_chats(tokenizer, [Chat(three_turn_chat(), "t")], 32, pad_id, skips)
    rendered = tokenizer.apply_chat_template(list(three_turn_chat()), tokenize=False, enable_thinking=False)
    assert rendered.endswith("<|im_end|>\n") and not skips
    unpadded = tokenizer(rendered[:-1], add_special_tokens=False)["input_ids"]
    pad = len(ids) - len(unpadded)
    assert ids[: len(unpadded)].tolist() == unpadded and len(ids) % 32 == 0 and 0 <= pad < 32
    assert np.all(ids[len(unpadded) :] == pad_id) and np.all(supervised[len(unpadded) :])
    assert runs(tokenizer, ids, supervised) == expected_segments(pad)
    prompt_text = tokenizer.decode(ids[~supervised].tolist())
    assert all(text in prompt_text for text in (SYSTEM, *USERS)) and not any(a in prompt_text for a in ANSWERS)

def test_assistant_span_starts_after_the_header_and_think_block():
    messages = ({"role": "user", "content": "think"}, {"role": "assistant", "content": "think"})
    prompt = "<|im_start|>user\nthink<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert assistant_spans(prompt + "think<|im_end|>\n", messages) == [(len(prompt),
                                                                        len(prompt) + len("think<|im_end|>"))]
    assert (assistant_spans(prompt + "thought<|im_end|>\n", messages) is None
            and assistant_spans("think<|im_end|>", messages) is None)

def write_bad_chats(path: Path) -> tuple[list[tuple[dict, ...]], dict]:
    good = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                          {"role": "assistant", "content": f"Answer {i}."}]} for i in range(3)]
    trailing = {"messages": good[1]["messages"] + [{"role": "user", "content": "And then?"}]}
    bad = ["{not json", json.dumps({"text": "no messages"}), json.dumps({"messages": []}),
           json.dumps({"messages": "hi"}),
           json.dumps({"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]}),
           json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 5}]}),
           json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant"}]}),
           json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  \n "}]}),
           json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}),
           json.dumps({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}),
           json.dumps({"messages": [{"role": "user", "content": "q"},
                                    {"role": "assistant", "content": "a<|im_end|>b"}]})]
    lines = [json.dumps(good[0]).encode(), *[b.encode() for b in bad], b"", json.dumps(trailing).encode(),
             b'{"messages": "caf\xe9 \xff"}', json.dumps(good[2]).encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    skips = {"invalid_json": 1, "missing_messages": 3, "unknown_role": 1, "non_string_content": 2, "empty_content": 1,
             "no_assistant_turn": 1,
             "assistant_before_user": 1, "reserved_token": 1, "non_utf8": 1}
    return [tuple(c["messages"][:2]) for c in (good[0], good[1], good[2])], skips

def test_bad_records_are_skipped_and_counted_by_reason(tmp_path):
    expected, expected_skips = write_bad_chats(tmp_path / "chats.jsonl")
    skips = Counter()
    chats = list(read_chat_jsonl(tmp_path / "chats.jsonl", skips, frozenset({"<|im_end|>"})))
    assert [c.messages for c in chats] == expected and dict(skips) == expected_skips
    raw = {"messages": [{"role": "user", "content": " q\r\n"}, {"role": "assistant", "content": "a "}]}
    assert chat_messages(raw) == ({"role": "user", "content": "q"}, {"role": "assistant", "content": "a"})

def test_missing_file_or_empty_glob_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for entry, expected in (("nowhere.jsonl", f"{tmp_path}/nowhere.jsonl: no such file"),
                            ("none/*.jsonl", "'none/*.jsonl' matches no file")):
        with pytest.raises(DataError) as err:
            list(iter_chats(SftDataParams(sources=("demo", entry)), Counter()))
        assert expected in str(err.value) and "\n" not in str(err.value)

def test_demo_set_is_deterministic_and_derived_from_demo_stories():
    chats = demo_chats(60, 7)
    assert chats == demo_chats(60, 7) and chats != demo_chats(60, 8)
    assert all(chat_messages({"messages": list(c.messages)}) == c.messages for c in chats)
    stories = set(demo_stories(120, 7))
    for chat in chats:
        user, answer = next((m["content"], chat.messages[i + 1]["content"]) for i, m in enumerate(chat.messages)
                            if m["role"] == "user")
        story = user.removeprefix("Continue this story: ") + " " + answer if user.startswith("Continue") else answer
        assert story in stories, chat
    lengths = Counter(len(c.messages) for c in chats)
    assert set(lengths) == {2, 3, 4} and any(c.messages[0]["role"] == "system" for c in chats)

def test_packing_keeps_conversations_whole_and_block_aligned(tmp_path):
    lengths, packer = (24, 48, 16, 64, 8, 40), SftPacker(tmp_path, "train", 64, pad_id=0)
    examples = [np.arange(100 * (k + 1), 100 * (k + 1) + n, dtype=np.uint32) for k, n in enumerate(lengths)]
    for k, ids in enumerate(examples):
        packer.add(ids, np.arange(len(ids)) % (k + 2) == 0)
    stats = packer.close()
    ids = np.fromfile(tmp_path / "train.input_ids.bin", np.uint32).reshape(-1, 64)
    doc_ids = np.fromfile(tmp_path / "train.doc_ids.bin", np.int32).reshape(-1, 64)
    supervised = np.fromfile(tmp_path / "train.supervised.bin", np.uint8).reshape(-1, 64).astype(bool)
    rows = [[int(n) for d, n in zip(*np.unique(r[r >= 0], return_counts=True), strict=True)] for r in doc_ids]
    assert (sorted(rows) == sorted([[24, 16, 8], [48], [64], [40]]) and stats["rows"] == 4
            and stats["tail_pad"] == 16 + 16 + 24)
    assert (sorted(np.unique(doc_ids[doc_ids >= 0]).tolist()) == list(range(6))
            and np.all(np.diff(doc_ids[doc_ids >= 0]) >= 0))
    for d in range(6):
        row, cols = np.nonzero(doc_ids == d)
        k = int(ids[row[0], cols[0]]) // 100 - 1
        assert len(set(row)) == 1 and cols[0] % 8 == 0 and np.array_equal(cols,
                                                                          np.arange(cols[0], cols[0] + lengths[k]))
        assert np.array_equal(ids[row[0], cols], examples[k]) and np.array_equal(supervised[row[0], cols],
                                                                                 np.arange(lengths[k]) % (k + 2) == 0)
    assert np.all(ids[doc_ids < 0] == 0) and not supervised[doc_ids < 0].any()
    as_tensor = torch.from_numpy(doc_ids.astype(np.int64))
    assert torch.equal(block_index(as_tensor, 8, "row"), block_index(as_tensor, 8, "document"))

def test_split_is_deterministic_and_disjoint():
    chats, p = demo_chats(400, 3), SftDataParams(eval_fraction=0.25, split_seed=1)
    splits = [split_of(c, p) for c in chats]
    assert splits == [split_of(c, p) for c in chats] and 60 < splits.count("eval") < 140
    assert splits != [split_of(c, SftDataParams(eval_fraction=0.25, split_seed=2)) for c in chats]

def write_stage_chats(path: Path) -> list[tuple[dict, ...]]:
    chats = [({"role": "user", "content": f"Tell me fact {i}."},
              {"role": "assistant", "content": f"Fact {i}: cats sleep {i} hours."}) for i in range(30)]
    chats.append(({"role": "system", "content": "Be kind."}, *three_turn_chat()[1:]))
    long = ({"role": "user", "content": "Long?"}, {"role": "assistant", "content": "word " * 300 + "end"})
    lines = [json.dumps({"messages": list(c)}) for c in (*chats, chats[0], long)] + ["{broken"]
    path.write_text("\n".join(lines) + "\n")
    return chats

@pytest.fixture(scope="module")
def sft_root(tmp_path_factory, qwen3_tokenizer_dir):
    root = tmp_path_factory.mktemp("sft")
    shutil.copytree(qwen3_tokenizer_dir, root / "models/init")
    chats = write_stage_chats(root / "chats.jsonl") + [c.messages for c in demo_chats(40, 7)]
    overrides = ["sft_data.sources=[chats.jsonl, demo]", "sft_data.demo_examples=40", "sft_data.seq_len=128",
                 "wsd.decay_to=16", "sft_data.eval_fraction=0.2"]
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return root, chats, sft_data.run(load_params(REPO / "params.yaml", overrides), None)
    finally:
        os.chdir(cwd)

def documents(shards: SftShards, tokenizer) -> list[tuple[str, str]]:
    """(full text, supervised text) of every document, rebuilt from the packed arrays."""
    names = ("input_ids", "doc_ids", "supervised")
    ids, doc_ids, supervised = (np.asarray(shards.columns[n]).reshape(-1) for n in names)
    def texts(d):
        doc = doc_ids == d
        return tokenizer.decode(ids[doc].tolist()), tokenizer.decode(ids[doc & (supervised == 1)].tolist())
    return [texts(d) for d in range(doc_ids.max() + 1)]

def test_stage_writes_manifest_and_reader_round_trips(sft_root):
    root, chats, metrics = sft_root
    tokenizer = AutoTokenizer.from_pretrained(root / "models/init")
    manifest = json.loads((root / "data/sft/manifest.json").read_text())
    assert (manifest["tokenizer_sha256"] == sha256_file(root / "models/init/tokenizer.json")
            and manifest["vocab_size"] == len(tokenizer))
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert (manifest["seq_len"], manifest["block_size"], manifest["pad_id"]) == (128, 16, pad_id)
    expected = {}
    for messages in chats:
        text = tokenizer.apply_chat_template(list(messages), tokenize=False, enable_thinking=False)[:-1]
        if -(-len(tokenizer(text)["input_ids"]) // 16) * 16 <= 128:
            expected[text] = "".join(m["content"] + "<|im_end|>" for m in messages if m["role"] == "assistant")
    too_long = 1 + len(chats) - len(expected)
    assert (manifest["skipped"] == {"duplicate": 1, "too_long": too_long, "invalid_json": 1}
            and metrics["train/examples"] + metrics["eval/examples"] == len(expected))
    assert len(expected) > 60
    found = {}
    for split in ("train", "eval"):
        shards = SftShards(root / "data/sft", split, root / "models/init")
        assert np.array_equal(shards.columns["supervised"],
                              np.fromfile(root / f"data/sft/{split}.supervised.bin", np.uint8).reshape(-1, 128))
        docs = documents(shards, tokenizer)
        assert len(docs) == manifest["splits"][split]["examples"] and manifest["splits"][split]["rows"] == len(shards)
        found[split] = {re.sub(r"(<\|endoftext\|>)+$", "", full): sup.replace("<|endoftext|>", "")
                        for full, sup in docs}
    assert not set(found["train"]) & set(found["eval"]) and found["train"] | found["eval"] == expected

def test_reader_batches_resume_exactly_and_refuse_another_tokenizer(sft_root, demo_tokenizer, tmp_path):
    shards = SftShards(sft_root[0] / "data/sft", "train")
    loader = ShardLoader(shards, 3, seed=5)
    first = [loader.next_batch() for _ in range(len(shards) // 3 + 2)]
    state, after = loader.state(), [loader.next_batch() for _ in range(4)]
    resumed = ShardLoader(shards, 3, seed=0)
    resumed.load_state(json.loads(json.dumps(state)))
    again = [resumed.next_batch() for _ in after]
    assert all(all(torch.equal(a[k], b[k]) for k in ("input_ids", "doc_ids", "supervised"))
               for a, b in zip(after, again, strict=True))
    assert (first[0]["supervised"].dtype == torch.bool and first[0]["input_ids"].dtype == torch.long
            and set(first[0]) == {"input_ids", "doc_ids", "supervised"})
    assert [len(m) for m in ShardLoader(shards, 3, seed=5).next_step(2, rank=1, world=2)] == [3, 3]
    demo_tokenizer.save_pretrained(tmp_path / "other")
    with pytest.raises(DataError, match="re-run the sft_data stage"):
        SftShards(sft_root[0] / "data/sft", "train", tmp_path / "other")

def test_prepare_sft_through_pipeline_and_cli(workdir, demo_tokenizer):
    demo_tokenizer.save_pretrained(workdir / "models/init")
    metrics = run_stage("sft_data", "params.yaml", ["sft_data.demo_examples=30", "sft_data.seq_len=256"])
    assert (metrics["train/examples"] + metrics["eval/examples"] + metrics.get("skipped/too_long", 0) == 30
            and (workdir / "data/sft/manifest.json").exists())
    cli = [str(Path(sys.executable).parent / "hildanext"), "prepare-sft", "--set", "sft_data.seq_len=100"]
    out = subprocess.run(cli, cwd=workdir, env=os.environ | {"PYTHONPATH": str(REPO / "src")}, capture_output=True,
                         text=True, timeout=300)
    assert (out.returncode == 2
            and out.stderr.strip() == "hildanext: error: sft_data.seq_len 100 is not a multiple of wsd.decay_to 32")
