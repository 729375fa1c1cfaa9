# Candidate rows of the bench: S and Q rows of each candidate folder (bench.candidates: merged, sft, distilled)
# against the AR base on the same held-out openings, each interleaved with its own AR run (bench.candidate_repeats),
# and the pick that bench.model = best follows: the highest S TPF among the candidates whose worse Gen PPL / AR's
# (S or Q) is within bench.candidate_slack of the best one's. Entry points: candidate_rows, best_candidate,
# bench_candidates.
from pathlib import Path
from hildanext.eval.bench import bench_requests, interleaved, measured_row, prepared_jobs, vs_ar
MODES = ("S", "Q")
def candidate_rows(engine, ar, prompts: list[str], b) -> dict:
    """{"S": row, "Q": row} of one candidate engine, each with its ratios to the AR row run beside it."""
    requests = bench_requests(b)
    named = {"S": requests["S"], "Q": requests["Q"], "ar": requests["active"]}
    jobs = prepared_jobs(engine, ar, named, tuple(named), prompts)
    runs = interleaved(jobs, b.candidate_repeats)
    measured = {name: measured_row(runs[name], jobs[name][1], ar.model) for name in jobs}
    return {mode: vs_ar(measured[mode], measured["ar"]) for mode in MODES}

def quality(rows: dict) -> float:
    ratios = [rows[mode]["gen_ppl_vs_ar"] for mode in MODES]
    return max(float("inf") if r is None else r for r in ratios)

def best_candidate(rows: dict[str, dict], slack: float) -> str:
    """The fastest candidate (S TPF) among those within slack x the best candidate's worse Gen PPL / AR's."""
    floor = min(quality(r) for r in rows.values())
    fits = [name for name, r in rows.items() if quality(r) <= slack * floor]
    return max(fits, key=lambda name: rows[name]["S"]["tpf"])

def bench_candidates(params, ar, prompts: list[str], make_engine) -> tuple[dict, str | None]:
    """Rows of every candidate folder that exists (the others are named and skipped) and the best of them."""
    rows = {}
    for folder in params.bench.candidates:
        if not (Path(folder) / "hildanext.json").exists():
            print(f"bench: candidate {folder} does not exist; skipped")
            continue
        rows[folder] = candidate_rows(make_engine("diffusion", Path(folder), params), ar, prompts, params.bench)
    return rows, best_candidate(rows, params.bench.candidate_slack) if rows else None
