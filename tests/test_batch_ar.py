# The AR engine's batched session: one left-padded Hugging Face generate over prompts of different lengths gives
# every row the ids it gets alone (float64; a stop id met mid-answer by one row only, per-row max_new_tokens),
# the session takes at most max_rows greedy rows per step, a sampled row runs alone with batch 1's draws, an
# observer that raises ends only its own row, and stop strings cut each row's text as at batch 1.
import pytest
import torch
from conftest import make_tiny_qwen3
from hildanext.config import Params
from hildanext.decode.ar import AREngine, ARSession, ar_generate_ids, ar_generate_rows, left_padded
from hildanext.decode.engines import Request
from hildanext.decode.settings import DecodeSettings, SpecialIds
from hildanext.model import load_model
PROMPTS = [[1, 2, 3], list(range(10, 30)), [40], list(range(50, 58))]
def test_left_padding_puts_each_prompt_at_the_right_end():
    ids, mask = left_padded([[4, 5], [6], [7, 8, 9]], 0)
    assert ids.tolist() == [[0, 4, 5], [0, 0, 6], [7, 8, 9]]
    assert mask.tolist() == [[0, 1, 1], [0, 0, 1], [1, 1, 1]]

def varied_model():
    """A tiny float64 Qwen3 with weights drawn wide enough that greedy answers do not repeat one token."""
    model, generator = make_tiny_qwen3(vocab_size=128, seed=3).double(), torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in [p for p in model.parameters() if p.dim() > 1]:
            weight.copy_(torch.randn(weight.shape, generator=generator, dtype=torch.float64) * 0.3)
    return model

def test_batched_generate_equals_batch_one_for_mixed_lengths_and_a_mid_answer_stop():
    model = varied_model()
    free = [ar_generate_ids(model, p, DecodeSettings(0.5, 0.5, 32, 24), SpecialIds(None, 0)).ids for p in PROMPTS]
    cut = next(i for i in range(4, 24) if free[1][i] not in free[1][:i] and free[1][i] != 0)
    stop = free[1][cut]
    special = SpecialIds(None, 0, (stop,))
    settings = [DecodeSettings(0.5, 0.5, 32, n) for n in (24, 24, 5, 17)]
    alone = [ar_generate_ids(model, p, s, special).ids for p, s in zip(PROMPTS, settings, strict=True)]
    together = ar_generate_rows(model, PROMPTS, settings, special)
    assert [r.ids for r in together] == alone
    assert alone[1] == free[1][: cut + 1] and cut < 23 and len(alone[2]) <= 5 and len(alone[3]) <= 17
    assert [r.stats.tokens for r in together] == [len(ids) for ids in alone]

@pytest.fixture(scope="module")
def ar_engine(model_dir):
    model, tokenizer = load_model(model_dir, Params().runtime)
    return AREngine(model.double(), tokenizer, Params(), model_dir)

def requests(engine, count: int, **kwargs) -> list:
    texts = ["Once upon a time", "The cat", "A little dog ran to the park with his friend and", "Tom"]
    return [engine.prepare(Request(prompt=texts[i % 4], max_new_tokens=12 + i, temperature=0.0, **kwargs))
            for i in range(count)]

def test_the_session_batches_greedy_rows_and_equals_batch_one(ar_engine):
    prepared = requests(ar_engine, 5)
    alone = [ar_engine.run(p) for p in prepared]
    session = ar_engine.session(3)
    keys = [session.add(p) for p in prepared]
    assert isinstance(session, ARSession) and len(session) == 5
    first = session.step()
    assert [k for k, _ in first] == keys[:3] and len(session) == 2
    ended = dict(first + session.step())
    assert len(session) == 0 and session.step() == []
    assert [(ended[k].ids, ended[k].text, ended[k].finish_reason) for k in keys] == [
        (c.ids, c.text, c.finish_reason) for c in alone]

def test_a_stop_string_cuts_each_row_as_at_batch_one(ar_engine):
    full = ar_engine.run(requests(ar_engine, 1)[0]).text
    prepared = requests(ar_engine, 4, stop=(full[4:7],))
    batched = ar_engine.run_batch(prepared, max_rows=4)
    assert [c.text for c in batched] == [ar_engine.run(p).text for p in prepared]
    assert batched[0].text == full[: full.find(full[4:7])] and batched[0].finish_reason == "stop"

def test_a_sampled_row_runs_alone_and_an_observer_that_raises_ends_only_its_row(ar_engine):
    sampled = ar_engine.prepare(Request(prompt="The cat", max_new_tokens=10, temperature=1.0, seed=4))
    greedy = requests(ar_engine, 2)
    session, events = ar_engine.session(8), []
    def refuse(event):
        raise RuntimeError("cancelled by the client")
    keys = [session.add(sampled), session.add(greedy[0], events.append), session.add(greedy[1], refuse)]
    assert [k for k, _ in session.step()] == [keys[0]] and len(session) == 2
    ended = dict(session.step())
    assert isinstance(ended[keys[2]], RuntimeError) and ended[keys[1]].ids == ar_engine.run(greedy[0]).ids
    assert events == [{"type": "block", "block": 0, "ids": ended[keys[1]].ids}]
    again = ar_engine.run_batch([sampled, sampled], max_rows=2)
    assert again[0].ids == again[1].ids == ar_engine.run(sampled).ids
