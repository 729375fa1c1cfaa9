# The conversion ablation as DVC experiments on the demo, same token budget for every variant: `queue` queues the
# variants (`dvc exp run --queue -n abl-<name> -S ...`) and starts one queue worker, `wait` blocks until the queue
# is empty, `report` writes docs/RESULTS.md from `dvc exp show --json` (per variant TPF S/Q, Gen PPL, ELBO
# perplexity, speed vs AR, pass@1, the bench's pick, the distilled candidate's rows and the teacher's seconds, and
# the best variant's frontier). Every variant states all the keys it compares; distill-* and hygiene variants
# (issue 27) start from the params.yaml defaults. Usage: ablation.py queue|wait|report [--only a,b] [--out FILE]
import argparse, csv, json, platform, subprocess, time
from pathlib import Path
from hildanext.config import load_params
from hildanext.train.wsd import wsd_phases
BASE = {"objective.shift": "false", "sft.cap_weight": "0.0", "wsd.decay_cap_weight": "0.0",
        "sft.complementary": "false"}
def no_warmup() -> dict:
    """Direct BDLM at wsd.decay_to for as many steps as params.yaml's whole WSD schedule (the same token budget)."""
    p = load_params("params.yaml")
    total = sum(phase.steps for phase in wsd_phases(p.wsd, p.tokenize.seq_len))
    return {"wsd.warmup_blocks": "[]", "wsd.stable_steps": "0", "wsd.decay_blocks": f"[{p.wsd.decay_to}]",
            "wsd.decay_steps": f"[{total}]"}

SHIFT = BASE | {"objective.shift": "true"}
VARIANTS = {
    "today": ("today's recipe (no shift, no CAP, no complementary masking)", BASE),
    "shift": ("+ token shift", SHIFT),
    "shift-cap-sft": ("+ shift + CAP in SFT", SHIFT | {"sft.cap_weight": "2.0"}),
    "shift-cap-decay": ("+ shift + CAP in the WSD decay", SHIFT | {"wsd.decay_cap_weight": "2.0"}),
    "shift-complementary": ("+ shift + complementary SFT masks", SHIFT | {"sft.complementary": "true"}),
    "shift-no-warmup": ("+ shift, no WSD warmup/stable (BDLM at the decay block size for every step)", SHIFT),
    "best": ("the best combination: the params.yaml defaults (the workspace's `make run` unless abl-best ran)", {}),
}
SEQ_KD = {"distill.kd_weight": "0.0", "distill.semi_ar_rate": "0.0", "distill.t2t_draft_rate": "0.0",
          "distill.cap_temperature": "1.0", "distill.mask_range": "[0.3,0.8]"}
VARIANTS |= {
    "distill-seq": ("issue 27: sequence-level KD only (the SFT mixture on the teacher's text)", SEQ_KD),
    "distill-kd": ("+ logit KD (distill.kd_weight 1)", SEQ_KD | {"distill.kd_weight": "1.0"}),
    "distill-full-mask": ("+ mask ratio up to 1.0", SEQ_KD | {"distill.mask_range": "[0.3,1.0]"}),
    "distill-semi-ar": ("+ semi-AR decoder states (half the examples)", SEQ_KD | {"distill.semi_ar_rate": "0.5"}),
    "distill-draft": ("+ T2T from the model's drafts (half the picks)", SEQ_KD | {"distill.t2t_draft_rate": "0.5"}),
    "distill-cap-t": ("+ CAP at temperature 0.5", SEQ_KD | {"distill.cap_temperature": "0.5"}),
    "distill-sentence-cuts": ("all distillation terms, teacher prompts cut at sentence ends only",
                              {"distill_data.sentence_share": "1.0"}),
    "distill-mid-cuts": ("all distillation terms, teacher prompts cut mid-sentence only",
                         {"distill_data.sentence_share": "0.0"}),
    "distill-sampled": ("all distillation terms, teacher sampled at temperature 0.8",
                        {"distill_data.temperature": "0.8"}),
    "wsd-lr-decay": ("hygiene: WSD learning rate decays (cosine to 0.1x)", {"wsd.lr_decay": "cosine"}),
    "t-eps": ("hygiene: t >= 0.05 (1/t weight capped at 20)", {"objective.t_eps": "0.05"}),
    "eval-draws": ("hygiene: checkpoint ranking over 4 mask draws",
                   {"wsd.eval_draws": "4", "sft.eval_draws": "4", "distill.eval_draws": "4"}),
}
BENCH = "metrics/bench.json"
def sh(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

def queue(names: list[str]) -> None:
    for name in names:
        changes = VARIANTS[name][1] | (no_warmup() if name.endswith("no-warmup") else {})
        sets = [arg for key, value in changes.items() for arg in ("-S", f"{key}={value}")]
        sh(["dvc", "exp", "run", "--queue", "-n", f"abl-{name}", *sets])
        print(f"queued abl-{name}")
    with open("ablation-queue.log", "w") as log:
        subprocess.run(["dvc", "queue", "start", "-j", "1"], check=True, stdout=log, stderr=subprocess.STDOUT)

def wait() -> None:
    while True:
        rows = [line.split() for line in sh(["dvc", "queue", "status"]).splitlines()[1:]]
        active = [r for r in rows if any(state in r for state in ("Queued", "Running"))]
        if not active:
            return
        print(f"{time.strftime('%H:%M:%S')} waiting on {len(active)} experiments", flush=True)
        time.sleep(30)

def experiments() -> dict[str, dict]:
    found = {}
    for entry in json.loads(sh(["dvc", "exp", "show", "--json"])):
        if entry["rev"] == "workspace" and "data" in (entry.get("data") or {}).get("metrics", {}).get(BENCH, {}):
            found["workspace"] = entry["data"]
        for group in entry.get("experiments") or []:
            data = group["revs"][0]["data"]
            running = (group.get("executor") or {}).get("state") in ("running", "queued")
            done = not running and "data" in data.get("metrics", {}).get(BENCH, {})
            if (group["name"] or "").startswith("abl-") and done:
                found[group["name"][4:]] = data
    workspace = found.pop("workspace", None)
    if "best" not in found and workspace is not None:
        found["best"] = workspace
    return found

def figures(data: dict) -> dict:
    bench = data["metrics"][BENCH]["data"]
    s, q, ar = (bench["settings"][k] for k in ("S", "Q", "ar"))
    ppl = bench["perplexity"]
    return {"tpf_s": s["tpf"], "tpf_q": q["tpf"], "gen_ppl_s": s.get("gen_ppl"), "gen_ppl_ar": ar.get("gen_ppl"),
            "gen_ppl_ratio": s.get("gen_ppl_vs_ar"), "rep4_ratio": s.get("repetition_vs_ar"),
            "elbo": ppl["bd_elbo_bound"], "elbo_ratio": ppl["ratio"], "speed_s": s["speed_vs_ar"],
            "speed_q": q["speed_vs_ar"], "pass_s": s.get("pass_at_1")} | distilled_figures(data, bench)

def distilled_figures(data: dict, bench: dict) -> dict:
    """The bench's pick, the distilled candidate's S/Q rows and the teacher's generation seconds (issue 27)."""
    rows = (bench.get("candidates") or {}).get("models/distilled") or {}
    teacher = data["metrics"].get("metrics/distill_data.json", {}).get("data", {})
    return {"pick": Path(bench.get("model", "")).name, "dist_tpf_s": rows.get("S", {}).get("tpf"),
            "dist_ppl_s": rows.get("S", {}).get("gen_ppl_vs_ar"), "dist_tpf_q": rows.get("Q", {}).get("tpf"),
            "dist_ppl_q": rows.get("Q", {}).get("gen_ppl_vs_ar"), "teacher_s": teacher.get("teacher_seconds")}

def cell(value) -> str:
    return "n/a" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)

COLUMNS = ["tpf_s", "tpf_q", "gen_ppl_s", "gen_ppl_ar", "gen_ppl_ratio", "rep4_ratio", "elbo", "elbo_ratio",
           "speed_s", "speed_q", "pass_s", "pick", "dist_tpf_s", "dist_ppl_s", "dist_tpf_q", "dist_ppl_q", "teacher_s"]
def table(found: dict) -> list[str]:
    lines = ["| variant | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, (label, _) in VARIANTS.items():
        if name in found:
            row = figures(found[name])
            lines.append(f"| {name}: {label} | " + " | ".join(cell(row[c]) for c in COLUMNS) + " |")
    return lines

def frontier_lines(path: Path) -> list[str]:
    """The workspace's metrics/frontier.csv (dvc exp show carries no lists) as a markdown table."""
    with path.open() as f:
        points = list(csv.DictReader(f))
    keys = ["setting", "tau_mask", "tau_edit", "tpf", "tokens_per_s", "gen_ppl", "repetition_4"]
    lines = ["| " + " | ".join(keys) + " |", "|---" * len(keys) + "|"]
    return lines + ["| " + " | ".join(cell(number(p.get(k))) for k in keys) + " |" for p in points]

def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text or None

def report(out: Path) -> None:
    found = experiments()
    if not found:
        raise SystemExit("no abl-* experiment with metrics in `dvc exp show`: run `queue` and `wait` first")
    text = ["# Results: the conversion ablation on the demo", "",
            f"Written by `python benchmarks/ablation.py report` from `dvc exp show --json` on {platform.machine()}, "
            f"{platform.processor() or 'CPU'}, {time.strftime('%Y-%m-%d')}. Columns: see the legend below.", ""]
    text += table(found) + ["", LEGEND, ""]
    text += ["## Frontier of the best variant (the workspace's metrics/frontier.csv)", ""]
    text += frontier_lines(Path("metrics/frontier.csv"))
    kept = out.read_text().split(MARKER, 1)[1] if out.exists() and MARKER in out.read_text() else "\n"
    out.write_text("\n".join(text) + "\n\n" + MARKER + kept)
    print(f"wrote {out} ({len(found)} variants)")

MARKER = "<!-- written by hand below this line; `ablation.py report` keeps it -->"
LEGEND = ("Legend: tpf_s/tpf_q = tokens per forward in S/Q mode (dllm protocol); gen_ppl_s/gen_ppl_ar = generative "
          "perplexity of S-mode/AR greedy continuations under the AR base; gen_ppl_ratio, rep4_ratio = S over AR; "
          "elbo = ELBO perplexity bound, elbo_ratio = over the AR perplexity on the same tokens; speed_s/speed_q = "
          "tokens/s over the AR base's; pass_s = micro HumanEval pass@1 in S mode (all of these for the folder the "
          "bench picked, bench.model = best); pick = that folder; dist_* = the distilled candidate's S/Q TPF and Gen "
          "PPL over the AR's; teacher_s = the AR teacher's generation seconds in distill_data (part of the budget).")
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["queue", "wait", "report"])
    parser.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("docs/RESULTS.md"))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(VARIANTS)
    {"queue": lambda: queue(names), "wait": wait, "report": lambda: report(args.out)}[args.action]()

if __name__ == "__main__":
    main()
