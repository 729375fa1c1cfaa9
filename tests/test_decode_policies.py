# The decode policies against hand traces: stop_in_block (the block ends at a stop with no mask before it, nothing
# past it or past max_new_tokens is decoded), the leftmost fallback, carry_next (the next unit's first token from
# the last pass, no forward), prob/margin/entropy confidences by hand, sub-blocks (each forward carries only its
# sub-block; the attention rule as a hand-written matrix); decode.exact restores the official policies; and cached =
# uncached = static = batched in float64 for every combination of policies, with token shift on and off.
import dataclasses, itertools, math
from types import SimpleNamespace
import pytest
import torch
from test_batch_decode import engine_for, parts  # noqa: F401 (parts is a fixture)
from test_decode import EOS, MASK, ScriptedLM, decode, row_logits, run_decoder
from hildanext.config import DecodeParams
from hildanext.decode.batch import run_all
from hildanext.decode.decoder import PassRecord, confidence_of
from hildanext.decode.engines import Request
from hildanext.decode.grid import grid_mask
from hildanext.decode.settings import EXACT, resolve_settings
TARGET = [0, 0, 5, 6, 7, 8, 9, 10, 4, 3]
class LeftToRightLM(ScriptedLM):
    """Query q proposes TARGET[q + 1]: with 0.9 once token q is known, with 0.3 while it is still a mask."""
    def __init__(self):
        super().__init__(None)
    def forward(self, input_ids, position_ids, logits_to_keep, **kwargs):
        self.inputs.append(input_ids[0].tolist())
        tokens, positions = input_ids[0, -logits_to_keep:].tolist(), position_ids[0, -logits_to_keep:].tolist()
        rows = [{TARGET[q + 1]: 0.3 if t == MASK else 0.9} for q, t in zip(positions, tokens, strict=True)]
        return SimpleNamespace(logits=torch.stack([row_logits(r) for r in rows])[None])

def left_to_right(n: int, **kw):
    model = LeftToRightLM()
    settings = dict(mask_id=MASK, eos_id=EOS, block_size=2, tau_mask=0.5, tau_edit=1.0, max_new_tokens=n, shift=True,
                    cache=False) | kw
    return model, run_decoder(model, [1, 2], **settings)

def test_the_leftmost_fallback_commits_left_to_right():
    script = [[{9: 0.9}, {5: 0.2}, {6: 0.3}, {7: 0.25}]]
    _, confident = decode(script, [1], 3, tau_edit=0.0)
    _, leftmost = decode(script, [1], 3, tau_edit=0.0, fallback="leftmost")
    assert [r.unmasked for r in confident.trace] == [[(1, 6)], [(2, 7)], [(0, 5)], []]
    assert [r.unmasked for r in leftmost.trace] == [[(0, 5)], [(1, 6)], [(2, 7)], []]

@pytest.mark.parametrize("cache", [False, True])
def test_stop_in_block_ends_the_block_at_the_stop_and_decodes_nothing_after_it(cache):
    script = lambda positions: [{1: {5: 0.9}, 2: {EOS: 0.9}}.get(p, {7: 0.3}) for p in positions]  # noqa: E731
    official_model, official = decode(script, [1], 7, eos_early_stop=False, cache=cache)
    model, out = decode(script, [1], 7, eos_early_stop=False, stop_in_block=True, cache=cache)
    assert official.ids == out.ids == [5, EOS]
    assert official.stats.forwards == 3 + 5 and out.stats.forwards == 2
    assert model.inputs == [[1, MASK, MASK, MASK], [1, 5, EOS]] and out.trace[1] == PassRecord(0, 1, 0, [], [])
    assert official_model.inputs[1] == [1, 5, EOS, MASK]

def test_a_stop_with_a_mask_before_it_waits_and_nothing_past_max_new_tokens_is_decoded():
    rows = {1: {5: 0.9}, 2: {6: 0.3}, 3: {EOS: 0.9}}
    script = lambda positions: [rows.get(p, {7: 0.9}) for p in positions]  # noqa: E731
    model, out = decode(script, [1], 7, stop_in_block=True)
    assert out.ids == [5, 6, EOS] and [r.unmasked for r in out.trace] == [[(0, 5), (2, EOS)], [(1, 6)], []]
    assert model.inputs[-1] == [1, 5, 6, EOS]
    model, out = decode(script, [1], 2, tau_mask=0.2, stop_in_block=True)
    assert out.ids == [5, 6] and model.inputs == [[1, MASK, MASK], [1, 5, 6]]
    official_model, _ = decode(script, [1], 2, tau_mask=0.2)
    assert official_model.inputs == [[1, MASK, MASK, MASK], [1, 5, 6, EOS]]

@pytest.mark.parametrize("cache", [False, True])
def test_carry_next_commits_the_next_units_first_token_from_the_last_pass(cache):
    model, official = left_to_right(6, cache=cache)
    carried_model, carried = left_to_right(6, cache=cache, carry_next=True)
    assert official.ids == carried.ids == TARGET[2:8]
    assert official.stats.forwards == 3 * 3 and carried.stats.forwards == 3 + 2 + 2
    carries = [r for r in carried.trace if r.phase == "carry"]
    assert carries == [PassRecord(2, 0, 1, [(2, 7)], [], "carry"), PassRecord(3, 0, 1, [(4, 9)], [], "carry")]
    assert carried_model.inputs[4 if cache else 3][-2:] == [7, MASK]

def test_carry_is_not_committed_below_tau_mask():
    _, out = left_to_right(6, carry_next=True, tau_mask=0.95)
    assert out.ids == TARGET[2:8] and not [r for r in out.trace if r.phase == "carry"]

def test_confidences_by_hand():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    tokens = torch.tensor([0, 1])
    entropy = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))
    assert confidence_of(probs, tokens, "prob").tolist() == pytest.approx([0.5, 0.3])
    assert confidence_of(probs, tokens, "margin").tolist() == pytest.approx([0.2, -0.2])
    assert confidence_of(probs, tokens, "entropy").tolist() == pytest.approx([math.exp(-entropy)] * 2)
    assert confidence_of(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), "entropy").tolist() == [1.0]

@pytest.mark.parametrize("kind, forwards", [("prob", 2), ("margin", 4), ("entropy", 4)])
def test_the_confidence_kind_decides_what_passes_tau_mask(kind, forwards):
    _, out = decode([[{9: 0.9}, {5: 0.55, 6: 0.4}, {5: 0.55, 6: 0.4}, {5: 0.55, 6: 0.4}]], [1], 3,
                    confidence=kind, tau_edit=1.0)
    assert out.ids == [5, 5, 5] and out.stats.forwards == forwards

def test_the_attention_rule_as_a_hand_written_matrix():
    seen = [4, 4, 4, 4, 6, 6, 8, 8]
    expected = torch.tensor([[k < seen[q] for k in range(8)] for q in range(8)])
    rule = grid_mask(torch.arange(8), torch.arange(8), 4, 2, 5)
    assert torch.equal(rule, expected)
    assert torch.equal(grid_mask(torch.arange(8), torch.arange(8), 4, None, 5),
                       torch.tensor([[k < (4 if q < 4 else 8) for k in range(8)] for q in range(8)]))
    cut = grid_mask(torch.arange(4, 6), torch.arange(8), 4, 2, 5, end=5)
    assert cut.tolist() == [[k < 5 for k in range(8)]] * 2

@pytest.mark.parametrize("cache", [False, True])
def test_each_sub_block_forward_carries_only_its_sub_block(cache):
    model, out = decode([[{9: 0.9}] * 4], [1], 3, sub_block=2, cache=cache, tau_edit=1.0)
    assert out.ids == [9, 9, 9] and [r.block for r in out.trace] == [0, 0, 1, 1]
    windows = [[1, MASK], [1, 9], [MASK, MASK], [9, 9]] if cache else [[1, MASK], [1, 9], [1, 9, MASK, MASK],
                                                                       [1, 9, 9, 9]]
    assert model.inputs == windows

def test_exact_restores_the_official_policies():
    chosen = DecodeParams(stop_in_block=True, fallback="leftmost", carry_next=True, confidence="entropy", sub_block=4)
    settings = resolve_settings(chosen, 32)
    assert (settings.stop_in_block, settings.fallback, settings.sub_block) == (True, "leftmost", 4)
    exact = resolve_settings(dataclasses.replace(chosen, exact=True), 32)
    assert {k: getattr(exact, k) for k in EXACT} == EXACT == {k: getattr(resolve_settings(DecodeParams(), 32), k)
                                                              for k in EXACT}
    assert resolve_settings(chosen, 32, exact=True) == exact

COMBOS = [dict(zip(("stop_in_block", "fallback", "carry_next", "confidence", "sub_block"), c, strict=True))
          for c in itertools.product([False, True], ["confident", "leftmost"], [False, True],
                                     ["prob", "margin", "entropy"], [None, 2])]
def variant(engine, prepared, **changes):
    return engine.run(dataclasses.replace(prepared, settings=dataclasses.replace(prepared.settings, **changes)))

@pytest.mark.slow
@pytest.mark.parametrize("shift", [False, True])
def test_cached_uncached_static_and_batched_agree_for_every_policy_combination(parts, shift):  # noqa: F811
    engine = engine_for(parts, shift)
    for policies in COMBOS:
        requests = [Request(prompt=p, mode=mode, max_new_tokens=n, policies=policies)
                    for p, mode, n in (("a", "S", 7), ("once upon a time", "Q", 9))]
        prepared = [engine.prepare(r) for r in requests]
        alone = [engine.run(p) for p in prepared]
        together = run_all(engine.session(2), prepared)
        for p, a, b in zip(prepared, alone, together, strict=True):
            assert (b.ids, b.result.trace, b.result.stats.forwards) == (a.ids, a.result.trace, a.result.stats.forwards)
            for other in (variant(engine, p, cache=False), variant(engine, p, cuda_graphs=True)):
                assert (other.ids, other.result.trace) == (a.ids, a.result.trace), policies
