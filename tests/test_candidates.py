# The bench's candidate rows and the pick that bench.model = best and export follow: the fastest candidate (S TPF)
# among those whose worse Gen PPL / AR's is within the slack of the best one's (hand cases); S and Q rows of a
# real tiny model equal its own generations' Gen PPL over the AR's, run on the same openings; missing candidates
# are skipped and bench.model = best with none fails with one line.
from types import SimpleNamespace
import pytest
from hildanext.config import BenchParams, Params
from hildanext.decode.engines import Request, make_engine
from hildanext.eval.bench import gen_ppl
from hildanext.eval.candidates import bench_candidates, best_candidate, candidate_rows
from hildanext.model import ModelFolderError
from hildanext.pipeline.bench import chosen_model
def rows(s_ppl, q_ppl, tpf):
    return {"S": {"gen_ppl_vs_ar": s_ppl, "tpf": tpf}, "Q": {"gen_ppl_vs_ar": q_ppl, "tpf": tpf}}

def test_best_is_the_fastest_within_the_quality_slack():
    found = {"merged": rows(1.3, 1.2, 1.0), "sft": rows(2.5, 9.9, 1.7), "distilled": rows(1.2, 1.6, 2.6)}
    assert best_candidate(found, 1.15) == "merged" and best_candidate(found, 1.25) == "distilled"
    assert best_candidate(found | {"x": rows(None, 1.0, 9.0)}, 1.15) == "merged"

def test_candidate_rows_are_gen_ppl_over_the_ar_on_the_same_openings(model_dir):
    engine, ar, prompts = make_engine("diffusion", model_dir, Params()), make_engine("ar", model_dir, Params()), [
        "Once upon a time", "The cat sat"]
    b = BenchParams(max_new_tokens=8, candidate_repeats=1)
    found = candidate_rows(engine, ar, prompts, b)
    expected = {}
    for name, runner, mode in (("Q", engine, "Q"), ("ar", ar, None)):
        done = [runner.prepare(Request(prompt=p, mode=mode, max_new_tokens=8, temperature=0.0)) for p in prompts]
        expected[name] = gen_ppl(ar.model, [p.prompt_ids for p in done], [runner.run(p).ids for p in done])
    assert set(found) == {"S", "Q"} and found["Q"]["gen_ppl"] == pytest.approx(expected["Q"])
    assert found["Q"]["gen_ppl_vs_ar"] == pytest.approx(expected["Q"] / expected["ar"]) and found["S"]["tpf"] > 0

def test_missing_candidates_are_skipped_and_best_needs_one(tmp_path, capsys):
    params = SimpleNamespace(bench=BenchParams(candidates=(str(tmp_path / "none"),)))
    assert bench_candidates(params, None, [], None) == ({}, None)
    assert "does not exist; skipped" in capsys.readouterr().out
    with pytest.raises(ModelFolderError, match="bench.model is best but none of bench.candidates"):
        chosen_model(BenchParams(model="best"), None)
    assert chosen_model(BenchParams(model="models/sft"), "models/merged") == "models/sft"
