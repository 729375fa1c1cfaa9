# The frontier's policy points: names and series labels from the params a point sets, requests that carry the
# policies into the resolved decode settings (exact restores the official ones), equal settings running once,
# duplicate or contradictory points refused, the S/Q presets chosen from hand-written rows, frontier rows and
# CSV columns with the resolved policies, and the plot's grouping into one series per policy.
import csv, importlib.util, math
import pytest
from pydantic import ValidationError
from hildanext.config import BenchParams, DecodeParams, Params
from hildanext.config.decode import FrontierPoint
from hildanext.decode.engines import make_engine
from hildanext.eval.bench import (FRONTIER_KEYS, POINT_KEYS, bench_requests, bench_settings, choose_presets,
                                  distinct_runs, point_name, series_name)
from hildanext.pipeline.bench import write_frontier_csv
POLICY = {"stop_in_block": True, "fallback": "leftmost", "carry_next": True, "confidence": "prob"}
def plot_module(repo_root):
    spec = importlib.util.spec_from_file_location("plot_frontier", repo_root / "benchmarks/plot_frontier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

def test_point_names_and_series_encode_what_the_point_sets():
    full = FrontierPoint(0.7, 1.0, stop_in_block=True, fallback="leftmost", carry_next=False, confidence="entropy",
                         sub_block=8)
    assert point_name(full) == "mask0.7_edit1_stop_leftmost_nocarry_entropy_sub8"
    assert series_name(full) == "stop+leftmost+nocarry+entropy+sub8"
    assert point_name(FrontierPoint(0.5, 0.0, "official", exact=True)) == "mask0.5_edit0_exact"
    assert [series_name(p) for p in (FrontierPoint(0.5, 0.0, exact=True), FrontierPoint(0.5, 0.0),
                                     FrontierPoint(0.5, 0.0, "mine", fallback="leftmost"))] == [
        "official", "active", "mine"]
    names = [point_name(p) for p in BenchParams().frontier]
    assert len(set(names)) == len(names) == 14

def test_points_that_repeat_or_contradict_are_refused():
    with pytest.raises(ValidationError, match="same taus and policies"):
        BenchParams(frontier=(FrontierPoint(0.5, 0.0, "a", fallback="leftmost"),
                              FrontierPoint(0.5, 0.0, "b", fallback="leftmost")))
    with pytest.raises(ValidationError, match="forces the official policies"):
        FrontierPoint(0.5, 0.0, exact=True, carry_next=True)
    BenchParams(frontier=(FrontierPoint(0.5, 0.0, fallback="leftmost"), FrontierPoint(0.5, 0.0, sub_block=8)))

def test_requests_carry_the_policies_into_the_resolved_settings(model_dir):
    points = (FrontierPoint(0.9, 1.0, "p", **POLICY, sub_block=8), FrontierPoint(0.5, 1.0, "o", exact=True),
              FrontierPoint(0.7, 1.0))
    requests = bench_requests(BenchParams(frontier=points))
    assert requests["mask0.9_edit1_stop_leftmost_carry_prob_sub8"].policies == POLICY | {"sub_block": 8, "exact": False}
    assert requests["mask0.5_edit1_exact"].policies == {"exact": True} and requests["mask0.7_edit1"].policies == {}
    leftmost = Params(decode=DecodeParams(fallback="leftmost", exact=True))
    engine = make_engine("diffusion", model_dir, leftmost)
    s = engine.prepare(requests["mask0.9_edit1_stop_leftmost_carry_prob_sub8"]).settings
    assert (s.tau_mask, s.tau_edit, s.stop_in_block, s.fallback, s.carry_next, s.sub_block) == (
        0.9, 1.0, True, "leftmost", True, 8)
    official = engine.resolve(requests["mask0.5_edit1_exact"])
    assert (official.fallback, official.stop_in_block, official.sub_block) == ("confident", False, None)
    assert engine.resolve(requests["mask0.7_edit1"]).fallback == "confident"
    free = make_engine("diffusion", model_dir, Params(decode=DecodeParams(fallback="leftmost")))
    assert free.resolve(requests["mask0.7_edit1"]).fallback == "leftmost"

def test_policies_are_part_of_the_settings_that_run_once(model_dir):
    engine = make_engine("diffusion", model_dir, Params())
    points = (FrontierPoint(0.5, 0.0, exact=True), FrontierPoint(0.5, 0.0, fallback="leftmost"),
              FrontierPoint(0.5, 0.0, fallback="confident"), FrontierPoint(0.5, 0.0, confidence="margin"))
    first = distinct_runs(engine, bench_requests(BenchParams(frontier=points)))
    assert first == {"active": "active", "S": "active", "Q": "Q", "mask0.5_edit0_exact": "active",
                     "mask0.5_edit0_leftmost": "mask0.5_edit0_leftmost", "mask0.5_edit0_confident": "active",
                     "mask0.5_edit0_margin": "mask0.5_edit0_margin"}

def row(setting, tpf, gen_ppl, series="s"):
    policies = {"stop_in_block": True, "fallback": "leftmost", "carry_next": False, "confidence": "prob",
                "sub_block": None, "max_post_steps": 4}
    return {"setting": setting, "series": series, "tau_mask": 0.5, "tau_edit": 1.0, **policies, "tpf": tpf,
            "gen_ppl": gen_ppl, "tokens_per_s": 100 * tpf}

def test_choose_presets_q_is_the_best_gen_ppl_and_s_the_fastest_near_it():
    rows = [row("a", 1.5, 4.0), row("b", 1.8, 4.0), row("c", 2.4, 4.9), row("d", 2.6, 5.1), row("e", 3.0, 20.0),
            row("f", 2.4, 4.5), row("nan", 9.0, math.nan), row("none", 9.0, None),
            {"setting": "ar", "series": "ar", "tpf": 1.0, "gen_ppl": 1.6}]
    chosen = choose_presets(rows, 1.25)
    assert chosen["Q"] == {"setting": "b", "series": "s", "tau_mask": 0.5, "tau_edit": 1.0, "tpf": 1.8,
                           "gen_ppl": 4.0, "policies": {k: rows[1][k] for k in ("stop_in_block", "fallback",
                                                                                 "carry_next", "confidence",
                                                                                 "sub_block", "max_post_steps")}}
    assert (chosen["S"]["setting"], chosen["S"]["tpf"], chosen["S"]["gen_ppl"]) == ("f", 2.4, 4.5)
    assert choose_presets(rows, 1.3)["S"]["setting"] == "d"
    assert choose_presets(rows, 1.0)["S"]["setting"] == "b"
    assert choose_presets([rows[-1]], 1.25) == {}

def test_frontier_rows_carry_series_and_resolved_policies(model_dir):
    engine, ar = make_engine("diffusion", model_dir, Params()), make_engine("ar", model_dir, Params())
    b = BenchParams(openings=2, max_new_tokens=6, code=False, repeats=1,
                    frontier=(FrontierPoint(0.5, 0.0), FrontierPoint(0.9, 1.0, "left", fallback="leftmost")))
    rows, frontier = bench_settings(engine, ar, ["Once upon a time", "The cat sat"], b)
    assert [tuple(r[k] for k in ("setting", "series", "fallback", "stop_in_block")) for r in frontier] == [
        ("mask0.5_edit0", "active", "confident", False), ("mask0.9_edit1_leftmost", "left", "leftmost", False),
        ("ar", "ar", None, None)]
    assert {k: frontier[0][k] for k in FRONTIER_KEYS} == {k: rows["S"][k] for k in FRONTIER_KEYS}
    assert set(choose_presets(frontier, 1.25)) == {"S", "Q"}

def test_frontier_csv_columns_and_plot_series(tmp_path, repo_root):
    rows = [row("p1", 2.0, 5.0, "policies"), row("o1", 1.5, 9.0, "official") | {"tau_edit": 0.0},
            row("p2", 2.2, 6.0, "policies"), {"setting": "ar", "series": "ar", "tpf": 1.0, "gen_ppl": 1.6,
                                              "tokens_per_s": 90.0}]
    write_frontier_csv(tmp_path / "frontier.csv", rows)
    with open(tmp_path / "frontier.csv", newline="") as f:
        assert next(csv.reader(f)) == [*POINT_KEYS, *FRONTIER_KEYS]
    plot = plot_module(repo_root)
    read = plot.read_frontier(tmp_path / "frontier.csv")
    assert (read[0]["fallback"], read[0]["tau_mask"], read[0]["sub_block"], read[3]["tau_edit"]) == (
        "leftmost", 0.5, None, None)
    groups = plot.series_groups(read)
    assert {k: [r["setting"] for r in v] for k, v in groups.items()} == {
        "policies": ["p1", "p2"], "official": ["o1"], "AR base": ["ar"]}
    assert [plot.editing(r) for r in read] == ["editing off (tau_edit 1)", "editing on", "editing off (tau_edit 1)",
                                               "AR base"]
    assert list(plot.series_groups([{"setting": "x", "tau_edit": 1.0}, read[3]])) == ["active", "AR base"]
    png = plot.plot_frontier(tmp_path / "frontier.csv", tmp_path / "docs/frontier.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
