# The shipped lm-eval tasks (tag hildanext_demo) and their data writer: the docs (hand-cut openings, gold in range,
# distractors from other texts, seeded), lm-eval's evaluator running all four tasks offline with its own `hf` model
# (Gen PPL and bits per byte checked against hand computations), Gen PPL under a briefly pretrained demo base ranking
# corpus continuations above the same words shuffled, the scorer variable's errors, and HumanEval pass/fail.
import json, math, random
import pytest
import torch
from hildanext.config import DemoParams
from hildanext.data.demo_corpus import demo_stories
from hildanext.eval.codeeval import load_tasks
from hildanext.eval.tasks import SCORER_ENV, TAG, TASK_FILES, task_manager, write_task_data
from hildanext.train.demo import build_demo_base
HAND = ["A one. B two. C three. D four.", 'He said, "Hi?" Then left. End.', "Ma sat. Pa ran.", "Too short",
        "   ", "X was here. Y came. Z went.", "P met Q. Q met R."]
def rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]

def test_writer_cuts_openings_by_hand_and_counts_the_short(tmp_path):
    counts = write_task_data(HAND, tmp_path, 3, 0)
    assert counts == {"hildanext_story": 3, "hildanext_story_choice": 3, "hildanext_rolling": 3,
                      "hildanext_humaneval": 3, "skipped_short": 2}
    assert rows(tmp_path / TASK_FILES["hildanext_story"]) == [
        {"prompt": "A one. B two.", "reference": "C three. D four."},
        {"prompt": 'He said, "Hi?"', "reference": "Then left. End."}, {"prompt": "Ma sat.", "reference": "Pa ran."}]
    choice = rows(tmp_path / TASK_FILES["hildanext_story_choice"])
    assert [d["context"] for d in choice] == ["A one. B two.", 'He said, "Hi?"', "Ma sat."]
    assert [d["choices"][d["gold"]] for d in choice] == ["C three.", "Then left.", "Pa ran."]
    assert [d["text"] for d in rows(tmp_path / TASK_FILES["hildanext_rolling"])] == HAND[:3]
    assert rows(tmp_path / TASK_FILES["hildanext_humaneval"])[0]["entry_point"] == load_tasks()[0].entry_point

def test_choices_are_four_distinct_with_distractors_from_other_texts_and_seeded(tmp_path):
    stories = demo_stories(40, 7)
    write_task_data(stories, tmp_path / "a", 20, 3)
    write_task_data(stories, tmp_path / "b", 20, 3)
    write_task_data(stories, tmp_path / "c", 20, 4)
    a, b, c = (rows(tmp_path / x / TASK_FILES["hildanext_story_choice"]) for x in "abc")
    assert a == b != c and len(a) == 20
    for doc, story in zip(a, stories, strict=False):
        assert 0 <= doc["gold"] < 4 and len(set(doc["choices"])) == 4 and story.startswith(doc["context"])
        distractors = [s for i, s in enumerate(doc["choices"]) if i != doc["gold"]]
        assert all(s not in story and any(s in other for other in stories) for s in distractors)
    assert len({d["gold"] for d in a}) > 1
    with pytest.raises(ValueError, match="no document"):
        write_task_data(["One sentence only.", ""], tmp_path / "d", 5, 0)

@pytest.fixture
def eval_cwd(tmp_path, monkeypatch):
    write_task_data(demo_stories(40, 7), tmp_path / "data/eval", 4, 0)
    monkeypatch.chdir(tmp_path)
    return tmp_path

@torch.no_grad()
def hand_gen_ppl(model, tokenizer, pairs) -> float:
    total, count = 0.0, 0
    for prompt, continuation in pairs:
        p, c = (tokenizer(t, add_special_tokens=False)["input_ids"] for t in (prompt, continuation))
        logp = torch.log_softmax(model(input_ids=torch.tensor([p + c])).logits[0].double(), -1)
        total -= sum(float(logp[len(p) - 1 + i, tok]) for i, tok in enumerate(c))
        count += len(c)
    return math.exp(total / count)

def test_lm_eval_runs_the_four_shipped_tasks_with_its_hf_model(eval_cwd, model_dir, monkeypatch):
    import lm_eval
    from transformers import AutoModelForCausalLM, AutoTokenizer
    monkeypatch.setenv(SCORER_ENV, str(model_dir))
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model_dir},dtype=float32", tasks=[TAG],
                                  task_manager=task_manager(), confirm_run_unsafe_code=True, device="cpu",
                                  batch_size=1, limit=3, log_samples=True)
    res = out["results"]
    assert sorted(res) == sorted(TASK_FILES) and all(res[t]["sample_len"] == 3 for t in TASK_FILES)
    assert 0 <= res["hildanext_story_choice"]["acc,none"] <= 1 and res["hildanext_humaneval"]["pass@1,none"] == 0
    rolling = res["hildanext_rolling"]
    assert rolling["bits_per_byte,none"] == pytest.approx(math.log2(rolling["byte_perplexity,none"]))
    assert rolling["word_perplexity,none"] > rolling["byte_perplexity,none"] > 1
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pairs = [(s["doc"]["prompt"], s["filtered_resps"][0]) for s in out["samples"]["hildanext_story"]]
    assert res["hildanext_story"]["gen_ppl,none"] == pytest.approx(hand_gen_ppl(model, tokenizer, pairs), rel=1e-4)
    assert 0 <= res["hildanext_story"]["repetition_4,none"] <= 1

def test_repetition_4_is_the_repeated_word_4gram_share(eval_cwd):
    story = task_manager().load(["hildanext_story"])["tasks"]["hildanext_story"]
    results = [story.process_results({"prompt": "x"}, [text])["repetition_4"] for text in
               ("a b c d a b c d", "a b c d e", "a b c")]
    assert results == [pytest.approx(1 - 4 / 5), 0.0, 0.0]

def shuffled_words(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)

@pytest.fixture(scope="module")
def demo_base_dir(tmp_path_factory):
    p = DemoParams(stories=200, vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                   num_kv_heads=1, head_dim=16, seq_len=64, batch_size=8, steps=200, warmup_steps=5)
    model, tokenizer, metrics = build_demo_base(demo_stories(p.stories, p.seed), p, 0, lambda m, step: None)
    assert metrics["eval_loss"] < metrics["eval_loss_init"] - 2
    out = tmp_path_factory.mktemp("scorer") / "base"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out

def test_gen_ppl_under_the_ar_base_ranks_corpus_continuations_above_shuffled_words(eval_cwd, demo_base_dir,
                                                                                     monkeypatch):
    monkeypatch.setenv(SCORER_ENV, str(demo_base_dir))
    write_task_data(demo_stories(40, 7), eval_cwd / "data/eval", 16, 0)
    story = task_manager().load(["hildanext_story"])["tasks"]["hildanext_story"]
    gen_ppl, rng = story.aggregation()["gen_ppl"], random.Random(0)
    docs = rows(eval_cwd / "data/eval" / TASK_FILES["hildanext_story"])
    real = [story.process_results(d, [" " + d["reference"]])["gen_ppl"] for d in docs]
    fake = [story.process_results(d, [" " + shuffled_words(d["reference"], rng)])["gen_ppl"] for d in docs]
    assert all(gen_ppl([r]) < gen_ppl([f]) for r, f in zip(real, fake, strict=True))
    assert 2 * gen_ppl(real) < gen_ppl(fake)

def test_gen_ppl_names_the_scorer_variable_when_unset_or_not_a_model(eval_cwd, monkeypatch):
    gen_ppl = task_manager().load(["hildanext_story"])["tasks"]["hildanext_story"].aggregation()["gen_ppl"]
    monkeypatch.delenv(SCORER_ENV, raising=False)
    with pytest.raises(RuntimeError, match=f"{SCORER_ENV} is unset"):
        gen_ppl([("Once upon a time", " there was")])
    monkeypatch.setenv(SCORER_ENV, str(eval_cwd))
    with pytest.raises(RuntimeError, match=f"{SCORER_ENV}=.* is not a causal model folder"):
        gen_ppl([("Once upon a time", " there was")])

def test_humaneval_task_passes_a_correct_body_and_fails_a_wrong_one(eval_cwd):
    task = task_manager().load(["hildanext_humaneval"])["tasks"]["hildanext_humaneval"]
    docs = rows(eval_cwd / "data/eval" / TASK_FILES["hildanext_humaneval"])[:3]
    assert [task.process_results(d, [d["reference"]]) for d in docs] == [{"pass@1": 1.0}] * 3
    assert [task.process_results(d, [d["wrong"]]) for d in docs] == [{"pass@1": 0.0}] * 3
    assert task.doc_to_text(docs[0]) == load_tasks()[0].prompt
