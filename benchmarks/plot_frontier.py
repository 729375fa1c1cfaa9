# The quality-speed frontier picture: reads the bench stage's metrics/frontier.csv (one row per decode point with
# its series, taus and policies, and one for the AR base) and draws TPF and tokens/s against Gen PPL (log scale):
# a colour per series, circles with editing off, squares with editing on, a star for AR, each point labelled.
# Run: python benchmarks/plot_frontier.py [csv] [png] (defaults metrics/frontier.csv, docs/frontier.png).
# Entry points: read_frontier(path) -> rows, series_groups(rows), plot_frontier(csv_path, png_path).
import csv, sys
from pathlib import Path
AR = "AR base"
MARKERS = {"editing off (tau_edit 1)": "o", "editing on": "s", AR: "*"}
def value(text: str):
    try:
        return float(text) if text else None
    except ValueError:
        return text

def read_frontier(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v if k in ("setting", "series") else value(v) for k, v in row.items()} for row in rows]

def editing(row: dict) -> str:
    if row["tau_edit"] is None:
        return AR
    return "editing off (tau_edit 1)" if row["tau_edit"] >= 1 else "editing on"

def series_groups(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows per series in order of first appearance (no series column: "active"), the AR row last as AR base."""
    groups = {}
    for row in rows:
        name = AR if editing(row) == AR else row.get("series") or "active"
        groups.setdefault(name, []).append(row)
    return {k: v for k, v in groups.items() if k != AR} | ({AR: groups[AR]} if AR in groups else {})

def label(row: dict) -> str:
    return "AR" if row["tau_edit"] is None else f"{row['tau_mask']:g}/{row['tau_edit']:g}"

def draw(ax, groups: dict, key: str) -> None:
    """One panel: each series in its colour, a thin line through its editing-off points by tau_mask."""
    for i, (name, rows) in enumerate(groups.items()):
        colour = "black" if name == AR else f"C{i}"
        off = sorted((r for r in rows if editing(r).startswith("editing off")), key=lambda r: r["tau_mask"])
        ax.plot([r["gen_ppl"] for r in off], [r[key] for r in off], color=colour, alpha=0.35, lw=1)
        for r in rows:
            ax.scatter(r["gen_ppl"], r[key], marker=MARKERS[editing(r)], color=colour, s=110 if name == AR else 50)
            ax.annotate(label(r), (r["gen_ppl"], r[key]), fontsize=7, xytext=(4, 3), textcoords="offset points")

def legend(fig, groups: dict) -> None:
    from matplotlib.lines import Line2D
    colours = [Line2D([], [], color="black" if n == AR else f"C{i}", marker="o" if n != AR else "*", ls="", label=n)
               for i, n in enumerate(groups)]
    shapes = [Line2D([], [], color="grey", marker=m, ls="", label=n) for n, m in MARKERS.items() if n != AR]
    fig.legend(handles=colours + shapes, loc="outside lower center", ncol=min(len(colours + shapes), 7), fontsize=8)

def plot_frontier(csv_path: Path, png_path: Path) -> Path:
    """Two scatter panels (TPF, tokens/s against Gen PPL), points labelled tau_mask/tau_edit; writes png_path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = series_groups(read_frontier(Path(csv_path)))
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
    for ax, key, name in zip(axes, ("tpf", "tokens_per_s"), ("TPF (tokens per forward)", "tokens/s"), strict=True):
        draw(ax, groups, key)
        ax.set(xscale="log", xlabel="Gen PPL under the AR base (lower is better)", ylabel=name)
        ax.grid(alpha=0.3)
    legend(fig, groups)
    fig.suptitle("Frontier: one colour per policy series; labels tau_mask/tau_edit", fontsize=10)
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return Path(png_path)

if __name__ == "__main__":
    args = sys.argv[1:]
    print(plot_frontier(Path(args[0] if args else "metrics/frontier.csv"),
                        Path(args[1] if len(args) > 1 else "docs/frontier.png")))
