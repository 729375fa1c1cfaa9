# The quality-speed frontier picture: reads the bench stage's metrics/frontier.csv (one row per decode point and
# one for the AR base) and draws TPF and tokens/s against Gen PPL (log scale), editing off, on and AR apart.
# Run: python benchmarks/plot_frontier.py [csv] [png] (defaults metrics/frontier.csv, docs/frontier.png).
# Entry points: read_frontier(path) -> rows, plot_frontier(csv_path, png_path).
import csv, sys
from pathlib import Path
def read_frontier(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v if k == "setting" else float(v) if v else None for k, v in row.items()} for row in rows]

def group(row: dict) -> str:
    if row["tau_edit"] is None:
        return "AR base"
    return "editing off (tau_edit 1)" if row["tau_edit"] >= 1 else "editing on"

def plot_frontier(csv_path: Path, png_path: Path) -> Path:
    """Two scatter panels (TPF, tokens/s against Gen PPL), each point labelled by its setting; writes png_path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = read_frontier(Path(csv_path))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    markers = {"editing off (tau_edit 1)": "o", "editing on": "s", "AR base": "*"}
    for ax, key, label in zip(axes, ("tpf", "tokens_per_s"), ("TPF (tokens per forward)", "tokens/s"), strict=True):
        for name, marker in markers.items():
            points = [r for r in rows if group(r) == name]
            ax.scatter([r["gen_ppl"] for r in points], [r[key] for r in points], marker=marker, s=60, label=name)
            for r in points:
                ax.annotate(r["setting"], (r["gen_ppl"], r[key]), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.set(xscale="log", xlabel="Gen PPL under the AR base (lower is better)", ylabel=label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return Path(png_path)

if __name__ == "__main__":
    args = sys.argv[1:]
    print(plot_frontier(Path(args[0] if args else "metrics/frontier.csv"),
                        Path(args[1] if len(args) > 1 else "docs/frontier.png")))
