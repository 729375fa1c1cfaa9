# The batched block-diffusion decoder (decode/batch.py) against the batch-1 decoder, in float64 on a tiny real
# Qwen3 with decisive random weights: every row of a batch yields exactly its batch-1 ids, trace and forward
# counts (mixed prompt lengths, prompts shorter than a block, S and Q, sampling with per-request seeds, the remask
# pass, stop strings and a stop token mid-block, token shift on and off, rows joining as others end); a row whose
# observer raises ends alone; BatchKVCache writes, grows and moves rows as computed by hand.
import dataclasses
import pytest
import torch
from conftest import make_tiny_qwen3
from hildanext.config import Params
from hildanext.data.demo_corpus import demo_stories
from hildanext.data.demo_tokenizer import train_demo_tokenizer
from hildanext.decode.batch import DiffusionSession, run_all
from hildanext.decode.engines import DiffusionEngine, Request
from hildanext.decode.kvcache import BatchKVCache
from hildanext.model import ModelInfo, add_mask_token
BLOCK = 4
PROMPTS = ["a", "the cat", "once upon a time there was a little girl named", "so", "he ran to the big tree and",
           "one day", "the sun was hot and the birds sang in the"]
@pytest.fixture(scope="module")
def parts():
    tokenizer = train_demo_tokenizer(demo_stories(200, 3), 400)
    model = make_tiny_qwen3(vocab_size=448, seed=1)
    add_mask_token(model, tokenizer)
    model = model.double()
    torch.manual_seed(4)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0, 0.25)
    return model.eval(), tokenizer

def engine_for(parts, shift: bool, stop_ids=()) -> DiffusionEngine:
    model, tokenizer = parts
    info = ModelInfo(tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|mask|>"), tuple(stop_ids),
                     block_size=BLOCK, shift=shift)
    return DiffusionEngine(model, tokenizer, Params(), None, info)

def requests(stop: str = "") -> list[Request]:
    """Mixed lengths and modes; row 2 samples, row 3 runs the remask pass, row 4 has the stop string."""
    out = [Request(prompt=p, mode="SQ"[i % 2], max_new_tokens=10 + 3 * i, seed=i) for i, p in enumerate(PROMPTS)]
    out[2] = dataclasses.replace(out[2], temperature=0.9, tau_mask=0.3)
    out[3] = dataclasses.replace(out[3], remask=True)
    out[4] = dataclasses.replace(out[4], stop=(stop,) if stop else ())
    return out

def same_as_alone(engine, prepared, max_rows: int) -> list:
    alone = [engine.run(p) for p in prepared]
    together = run_all(engine.session(max_rows), prepared)
    for a, b in zip(alone, together, strict=True):
        assert b.ids == a.ids and b.text == a.text and b.finish_reason == a.finish_reason
        assert b.result.trace == a.result.trace and b.result.remask == a.result.remask
        counts = ("forwards", "cache_forwards", "prefill_forwards", "tokens")
        assert [getattr(b.result.stats, k) for k in counts] == [getattr(a.result.stats, k) for k in counts]
    return alone

@pytest.mark.parametrize("shift", [False, True])
def test_every_row_of_a_batch_yields_its_batch_1_ids(parts, shift):
    engine = engine_for(parts, shift)
    text = engine.run(engine.prepare(requests()[4])).text
    prepared = [engine.prepare(r) for r in requests(stop=text[len(text) // 2 :][:2])]
    assert isinstance(engine.session(3), DiffusionSession)
    assert min(len(p.prompt_ids) for p in prepared) < BLOCK < max(len(p.prompt_ids) for p in prepared)
    alone = same_as_alone(engine, prepared, max_rows=3)
    assert any(c.result.stats.cache_forwards for c in alone), "no row refreshed a stale block: the test lost reach"
    assert alone[3].result.remask is not None and alone[4].finish_reason == "stop" and len(alone[4].text) < len(text)
    assert len({tuple(c.ids) for c in alone}) == len(alone)

def test_a_stop_token_in_the_middle_of_a_block_ends_its_row_there(parts):
    engine = engine_for(parts, shift=False)
    prepared = [engine.prepare(dataclasses.replace(r, max_new_tokens=16)) for r in requests()]
    first = engine.run(prepared[1])
    answer_start = len(prepared[1].prompt_ids)
    middle = next(i for i, _ in enumerate(first.ids) if (answer_start + i) % BLOCK not in (0, BLOCK - 1))
    stopper = engine_for(parts, shift=False, stop_ids=[first.ids[middle]])
    prepared = [stopper.prepare(dataclasses.replace(r, max_new_tokens=16)) for r in requests()]
    alone = same_as_alone(stopper, prepared, max_rows=4)
    cut = alone[1].ids
    assert len(cut) <= middle + 1 and cut[-1] == first.ids[middle] and alone[1].finish_reason == "stop"

def test_a_row_whose_observer_raises_ends_alone(parts):
    engine = engine_for(parts, shift=True)
    prepared = [engine.prepare(r) for r in requests()[:4]]
    passes = []
    def failing(event):
        passes.append(event["type"])
        if len(passes) == 3:
            raise RuntimeError("cancelled by the test")
    session = engine.session(4)
    keys = [session.add(p, failing if i == 1 else None) for i, p in enumerate(prepared)]
    ended = {}
    while len(session):
        ended.update(session.step())
    assert isinstance(ended[keys[1]], RuntimeError) and len(passes) == 3
    for i in (0, 2, 3):
        assert ended[keys[i]].ids == engine.run(prepared[i]).ids
    with pytest.raises(ValueError, match="token shift needs a non-empty prompt"):
        run_all(engine.session(2), [engine.prepare(Request(prompt="", max_new_tokens=4)), prepared[0]])

def test_batch_cache_writes_grows_and_moves_rows_as_computed_by_hand():
    cache = BatchKVCache(rows=3, capacity=4)
    key = torch.arange(2 * 1 * 3 * 1, dtype=torch.float64).reshape(2, 1, 3, 1) + 1
    cache.begin(torch.tensor([2, 0]), torch.tensor([[2, 3, 0], [1, 0, 0]]), length=5)
    keys, values = cache.update(key, -key, 0)
    assert keys.shape == (2, 1, 5, 1)
    assert cache.keys[0][:, 0, 1:, 0].tolist() == [[4, 0, 0, 0], [0] * 4, [0, 1, 2, 0]] and cache.keys[0][2, 0, 0] == 3
    assert keys[:, 0, 1:, 0].tolist() == [[0, 1, 2, 0], [4, 0, 0, 0]] and values[0, 0, 2, 0] == -1
    cache.begin(torch.tensor([0, 1]), torch.tensor([[4], [2]]), length=3, prefix=2)
    assert cache.update(key[:, :, :1], key[:, :, :1], 0)[0].shape == (2, 1, 3, 1)
    assert cache.keys[0][0, 0, 1:, 0].tolist() == [4, 0, 0, 1] and cache.keys[0][1, 0, 1:, 0].tolist() == [0, 4, 0, 0]
    cache.grow(6)
    assert cache.keys[0].shape == (3, 1, 7, 1) and cache.keys[0][2, 0, 1:, 0].tolist() == [0, 1, 2, 0, 0, 0]
    cache.move(2, 0)
    assert cache.keys[0][0, 0, 1:, 0].tolist() == [0, 1, 2, 0, 0, 0] and cache.values[0][0, 0, 3, 0] == -2

def eager_parts(parts, device: str = "cpu"):
    model = make_tiny_qwen3(vocab_size=448, attn="eager", seed=1)
    add_mask_token(model, parts[1])
    model.load_state_dict(parts[0].state_dict())
    return model.double().to(device).eval(), parts[1]

def test_eager_attention_batches_alike(parts):
    engine = engine_for(eager_parts(parts), shift=True)
    same_as_alone(engine, [engine.prepare(r) for r in requests()[:5]], max_rows=3)

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graphs_per_batch_size_give_the_eager_ids(parts):
    model = parts[0].to("cuda")
    try:
        engine = engine_for((model, parts[1]), shift=True)
        engine.params = Params(runtime=dataclasses.replace(Params().runtime, cuda_graphs=True))
        prepared = [engine.prepare(r) for r in requests()]
        assert all(p.settings.cuda_graphs for p in prepared)
        session = engine.session(4)
        graphs = run_all(session, prepared)
        assert session.graphs is not None and len(session.graphs.captured) >= 2
        eager = run_all(engine_for((model, parts[1]), True).session(4), prepared)
        assert [c.ids for c in graphs] == [c.ids for c in eager]
    finally:
        parts[0].to("cpu")
