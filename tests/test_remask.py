# The remask pass against hand-computed expectations: window layout, quota bounds (min, target,
# percentile cap, candidates), overlapping windows and params validation on the pure selection; the decoder
# on a scripted LM (prompt and stop untouched, Gamma-only re-decode, forwards, event order), on a tiny Qwen3
# (fresh block-causal confidences, cached == uncached, off == before), `hildanext generate --remask --trace`,
# and the server (the stream is sent after the pass, /generate and /live show the remask passes).
import dataclasses, math, re
from fractions import Fraction
import httpx, openai, pytest, torch
from typer.testing import CliRunner
from conftest import REPO, make_tiny_qwen3
from hildanext.cli import app
from hildanext.config import DecodeParams, ParamsError, load_params
from hildanext.config.decode import RemaskParams
from hildanext.decode.decoder import PassRecord, block_causal, generate_ids
from hildanext.decode.dinfer import unsupported
from hildanext.decode.settings import SpecialIds, resolve_settings
from hildanext.model import attention_mask_4d
from hildanext.decode.remask import select_windows, window_quota, window_spans
from hildanext.serve.app import create_app
from test_decode import EOS, MASK, ScriptedLM, lively_qwen3, run_decoder
from test_live import events
from test_serve import LiveServer, make_params
PROMPT = "Once upon a time, Lily went to the park."
def picks(windows) -> list[list[int]]:
    return [[i for i, _, _ in w.remasked] for w in windows]

@pytest.mark.parametrize("length, size, stride, spans", [
    (10, 4, 2, [(0, 4), (2, 6), (4, 8), (6, 10)]),
    (11, 4, 3, [(0, 4), (3, 7), (6, 10), (7, 11)]),
    (3, 64, 32, [(0, 3)]),
    (10, 2, 5, [(0, 2), (5, 7), (8, 10)]),
    (0, 4, 2, []),
])
def test_windows_slide_by_stride_and_the_last_one_ends_at_the_answer_end(length, size, stride, spans):
    assert window_spans(length, size, stride) == spans

@pytest.mark.parametrize("below, width, target, low, expected",
                         [(0, 20, 0.15, 0.1, 2), (1, 20, 0.15, 0.1, 2), (8, 20, 0.15, 0.1, 3), (8, 10, 0.15, 0.05, 2),
                          (8, 30, 0.15, 0.05, 5), (0, 21, 0.15, 0.05, 2), (5, 3, 0.15, 0.05, 1)])
def test_quota_is_below_count_clamped_to_ceil_min_and_round_half_up_target(below, width, target, low, expected):
    assert window_quota(below, width, RemaskParams(target_ratio=target, min_ratio=low)) == expected

def twenty(low: dict) -> list[float]:
    conf = [0.9 + 0.004 * i for i in range(20)]
    return [low.get(i, c) for i, c in enumerate(conf)]

def test_min_bound_binds_when_few_tokens_are_below_tau():
    params = RemaskParams(target_ratio=0.15, min_ratio=0.1, block_size=20, block_stride=10, percentile_safety=0.95)
    windows = select_windows(list(range(100, 120)), twenty({7: 0.2, 12: 0.6, 3: 0.7}), 0.5, params)
    assert [(w.start, w.end) for w in windows] == [(0, 20)] and picks(windows) == [[7, 12]]
    assert windows[0].candidates == list(range(18)) and windows[0].remasked[0] == (7, 107, 0.2)

def test_target_bound_binds_when_many_tokens_are_below_tau():
    params = RemaskParams(target_ratio=0.15, min_ratio=0.1, block_size=20, block_stride=10, percentile_safety=0.95)
    conf = twenty({1: 0.3, 4: 0.1, 6: 0.45, 9: 0.2, 11: 0.05, 14: 0.4, 16: 0.35, 18: 0.25})
    assert picks(select_windows(list(range(20)), conf, 0.5, params)) == [[4, 9, 11]]

def test_percentile_cap_keeps_the_most_confident_safe_and_never_more_than_candidates():
    conf = [0.05, 0.01, 0.10, 0.03, 0.08, 0.02, 0.09, 0.04, 0.07, 0.06]
    for low in (0.5, 1.0):
        windows = select_windows(list(range(10)), conf, 0.5,
                                 RemaskParams(target_ratio=1.0, min_ratio=low, block_size=10, percentile_safety=0.8))
        assert windows[0].candidates == [0, 1, 3, 5, 7, 8, 9] and picks(windows) == [[0, 1, 3, 5, 7, 8, 9]]

def test_overlapping_windows_count_earlier_picks_and_never_pick_twice():
    conf = [0.1, 0.9, 0.2, 0.95, 0.3, 0.15, 0.8, 0.7]
    params = RemaskParams(target_ratio=0.5, min_ratio=0.25, block_size=4, block_stride=2, percentile_safety=1.0)
    windows = select_windows(list(range(8)), conf, 0.5, params)
    expected = [(0, 4, [0, 1, 2]), (2, 6, [2, 4, 5]), (4, 8, [4, 5, 7])]
    assert [(w.start, w.end, w.candidates) for w in windows] == expected
    assert picks(windows) == [[0, 2], [5], [4]]

@pytest.mark.parametrize("override, expected", [
    ("decode.remask.min_ratio=0.2", "decode.remask.min_ratio: Value error, min_ratio 0.2 > target_ratio 0.15"),
    ("decode.remask.target_ratio=1.5", "decode.remask.target_ratio: Input should be less than or equal to 1"),
    ("decode.remask.percentile_safety=0", "decode.remask.percentile_safety: Input should be greater than 0"),
    ("decode.remask.block_stride=0", "decode.remask.block_stride: Input should be greater than or equal to 1"),
    ("decode.remask.block_size=0", "decode.remask.block_size: Input should be greater than or equal to 1"),
    ("decode.remask_pass=maybe", "decode.remask_pass: Input should be a valid boolean"),
])
def test_bad_remask_params_name_the_key(repo_root, override, expected):
    assert load_params(repo_root / "params.yaml").decode.remask == RemaskParams(0.15, 0.05, 64, 32, 0.95)
    with pytest.raises(ParamsError, match=expected.replace(".", r"\.")):
        load_params(repo_root / "params.yaml", [override])

class Script:
    """Decode passes: targets at 0.9; the one scoring forward (keep == answer length): scores; then token 8 at redo."""
    def __init__(self, prompt_len: int, targets: dict, scores: list[float], redo: float = 0.9):
        self.prompt_len, self.targets, self.scores, self.redo, self.scored = prompt_len, targets, scores, redo, False
    def __call__(self, positions):
        if not self.scored and len(positions) == len(self.scores):
            self.scored = True
            return [{self.targets[p]: self.scores[p - self.prompt_len], MASK: 0.0} for p in positions]
        return [{8: self.redo} if self.scored else {self.targets[p]: 0.9} for p in positions]

def scripted(targets, scores, n, redo=0.9, **remask):
    model, events = ScriptedLM(Script(2, targets, scores, redo)), []
    kw = dict(mask_id=MASK, eos_id=EOS, block_size=4, tau_mask=0.5, tau_edit=0.5, max_new_tokens=n, cache=False,
              observer=events.append)
    return model, events, run_decoder(model, [1, 2], remask=RemaskParams(**remask), **kw)

def test_scripted_remask_redecodes_the_least_confident_and_keeps_the_prompt():
    targets = {p: 3 + p for p in range(8)}
    model, events, out = scripted(targets, [0.9, 0.3, 0.95, 0.2, 0.4, 0.99], 6, target_ratio=0.5, min_ratio=0.2,
                                  percentile_safety=1.0)
    assert picks(out.remask.windows) == [[1, 3, 4]] and out.remask.windows[0].candidates == [0, 1, 2, 3, 4]
    assert out.remask.windows[0].remasked == [(1, 6, pytest.approx(0.3)), (3, 8, pytest.approx(0.2)),
                                              (4, 9, pytest.approx(0.4))]
    assert out.ids == [5, 8, 7, 8, 8, 10] and out.remask.changed == [(1, 6, 8), (4, 9, 8)] and out.remask.remasked == 3
    assert model.inputs[4:] == [[1, 2, 5, 6, 7, 8, 9, 10], [1, 2, 5, MASK], [1, 2, 5, 8, 7, MASK, MASK, 10]]
    assert all(x[:2] == [1, 2] for x in model.inputs) and out.stats.forwards == 4 + 3 == len(model.inputs)
    assert out.trace[4:] == [PassRecord(0, 0, 0, [(1, 8)], [], "remask"),
                             PassRecord(1, 0, 0, [(3, 8), (4, 8)], [], "remask")]
    kinds = [e["type"] for e in events]
    assert kinds == ["pass"] * 4 + ["remask"] + ["pass"] * 2 + ["block"] and events[-1]["ids"] == out.ids
    assert events[4]["forwards"] == 5

def test_redecode_keeps_gamma_at_least_one_and_the_stop_token_is_never_remasked():
    targets = {p: 3 for p in range(8)} | {7: EOS}
    _, _, out = scripted(targets, [0.2, 0.1, 0.95, 0.3, 0.6, 0.01], 6, redo=0.3, target_ratio=0.6, min_ratio=0.0,
                         percentile_safety=1.0)
    window = out.remask.windows[0]
    assert (window.start, window.end, window.candidates) == (0, 5, [0, 1, 3, 4]) and picks([window]) == [[0, 1, 3]]
    assert out.ids == [8, 8, 3, 8, 3, EOS]
    assert [r.unmasked for r in out.trace if r.phase == "remask"] == [[(0, 8)], [(1, 8)], [(3, 8)]]

def test_remask_on_a_tiny_qwen3_scores_with_a_fresh_block_causal_forward_and_ignores_the_cache():
    model, prompt = lively_qwen3("sdpa"), list(range(10, 21))
    kw = dict(mask_id=127, eos_id=126, block_size=8, tau_mask=0.3, tau_edit=0.0, max_post_steps=3, max_new_tokens=21)
    remask = RemaskParams(target_ratio=0.25, min_ratio=0.1, block_size=8, block_stride=4, percentile_safety=0.95)
    off = run_decoder(model, prompt, **kw)
    on, uncached = (run_decoder(model, prompt, cache=cache, remask=remask, **kw) for cache in (True, False))
    assert 126 not in off.ids + on.ids and 127 not in on.ids and len(on.ids) == len(off.ids) == 21
    assert [(w.start, w.end) for w in on.remask.windows] == [(0, 8), (4, 12), (8, 16), (12, 20), (13, 21)]
    assert on.ids == uncached.ids and on.remask == uncached.remask and on.trace == uncached.trace
    assert [r for r in on.trace if r.phase == "decode"] == off.trace
    assert on.stats.forwards == off.stats.forwards + 1 + sum(r.phase == "remask" for r in on.trace)
    picked = [p for w in on.remask.windows for p in w.remasked]
    assert 1 <= len(picked) and all(on.ids[i] == off.ids[i] for i in range(21) if i not in {p[0] for p in picked})
    x = torch.tensor([prompt + off.ids])
    with torch.no_grad():
        mask = attention_mask_4d(block_causal(0, 32, 8), "sdpa", model.dtype)
        logits = model(input_ids=x, attention_mask=mask).logits[0, 11:]
    probs = logits.index_fill(-1, torch.tensor([127]), -math.inf).softmax(-1)
    assert all(token == off.ids[i] and conf == pytest.approx(float(probs[i, token]), rel=1e-9)
               for i, token, conf in picked)

def test_off_by_default_is_the_plain_decoder():
    model, prompt = make_tiny_qwen3(), [3, 4, 5]
    kw = dict(mask_id=127, eos_id=126, block_size=8, tau_mask=0.5, tau_edit=0.5, max_new_tokens=16)
    params = DecodeParams(tau_edit=0.5, max_new_tokens=16, remask=RemaskParams(target_ratio=1.0))
    resolved = resolve_settings(params, 8)
    plain, off = run_decoder(model, prompt, **kw), generate_ids(model, prompt, resolved, SpecialIds(127, 126))
    assert (plain.ids, plain.trace, plain.stats.forwards) == (off.ids, off.trace, off.stats.forwards)
    assert plain.remask is off.remask is None
    settings = resolve_settings(DecodeParams(), 32)
    assert settings.remask is None and settings.view()["remask_pass"] is False
    repo = load_params(REPO / "params.yaml").decode
    on = resolve_settings(repo, 32, "Q", remask_pass=True)
    assert on.remask == repo.remask == RemaskParams() and on.view()["remask_pass"] is True
    remasking = dataclasses.replace(settings, remask=RemaskParams(), tau_edit=1.0)
    assert "remask" in unsupported(remasking) and unsupported(dataclasses.replace(settings, tau_edit=1.0)) is None

def cli(model_dir, *extra) -> list[str]:
    args = ["generate", PROMPT, "--max-new-tokens", "40", "--trace", "--model", str(model_dir), "--params",
            str(model_dir.parent / "none.yaml"), "--set", "decode.block_size=8", *extra]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    return out.stdout.strip().splitlines()

def test_generate_remask_trace_prints_windows_and_the_summary_counts(model_dir):
    off, on = cli(model_dir), cli(model_dir, "--remask")
    by_param = cli(model_dir, "--set", "decode.remask_pass=true")
    overruled = cli(model_dir, "--set", "decode.remask_pass=true", "--no-remask")
    assert by_param[:-1] == on[:-1] and "remasked" in by_param[-1] and overruled[:-1] == off[:-1]
    assert "remasked" not in overruled[-1]
    assert not any(line.startswith("remask") for line in off) and "remasked" not in off[-1]
    assert [line for line in on if line.startswith("block ")] == [line for line in off if line.startswith("block ")]
    windows = [line for line in on if line.startswith("remask window ")]
    width = int(windows[0].split(", ")[1].split(")")[0])
    quota = math.floor(Fraction(15, 100) * width + Fraction(1, 2))
    assert len(windows) == 1 and width in (39, 40)
    assert f": {math.ceil(Fraction(95, 100) * width) - 1} candidates |" in windows[0]
    assert len(re.findall(r"@\d\.\d{3}(?: |$)", windows[0])) == quota and f", remasked {quota} (" in on[-1]
    forwards = [int(lines[-1].split("forwards ")[1].split(",")[0]) for lines in (off, on)]
    assert forwards[1] == forwards[0] + 1 + sum(line.startswith("remask block ") for line in on)

@pytest.fixture(scope="module")
def server(model_dir):
    with LiveServer(create_app(make_params(model_dir))) as live:
        yield live

def deltas(server, remask: bool) -> tuple[list[str], str]:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120)
    kw = dict(model="any", prompt=PROMPT, max_tokens=90, seed=5, temperature=1.0, extra_body={"remask": remask})
    full = client.completions.create(**kw).choices[0].text
    chunks = client.completions.create(**kw, stream=True)
    return [c.choices[0].text for c in chunks if c.choices and c.choices[0].text], full

def test_serve_streams_only_after_the_remask_pass(server):
    off, on = deltas(server, False), deltas(server, True)
    assert len(off[0]) >= 2 and "".join(off[0]) == off[1]
    assert on[0] == [on[1]]
    body = {"prompt": PROMPT, "max_new_tokens": 40, "seed": 2, "temperature": 1.0, "trace": True, "remask": True}
    answer = httpx.post(f"{server.url}/generate", json=body, timeout=120).json()
    phases = [r["phase"] for r in answer["trace"]]
    assert answer["settings"]["remask_pass"] is True and answer["stats"]["forwards"] == len(phases) + 1
    assert "remask" in phases
    assert len(answer["remask"]["windows"]) == 1 and answer["remask"]["windows"][0]["remasked"]
    stream = events(server, prompt=PROMPT, max_new_tokens=40, seed=2, temperature=1.0, remask="true")
    passes = [d for n, d in stream if n == "pass"]
    assert stream[-1][0] == "done" and stream[-1][1]["text"] == answer["text"]
    assert len(passes) == answer["stats"]["forwards"]
    scoring = [p for p in passes if p["phase"] == "remask" and p["block"] is None]
    assert len(scoring) == 1
    assert [r["i"] for r in scoring[0]["remasked"]] == [r[0] for r in answer["remask"]["windows"][0]["remasked"]]
    assert [p["phase"] for p in passes].index("remask") == phases.index("remask")
    assert stream[0][1]["remask_pass"] is True
    assert passes[-1]["tpf"] == stream[-1][1]["stats"]["tpf"] and passes[-1]["kept"] == stream[-1][1]["stats"]["tokens"]
