# The export stage (`hildanext export`): bench.model (best: the folder bench picked) -> models/export, the folder
# other machines `dvc pull` and serve: Hugging Face weights and tokenizer, hildanext.json with ids, the trained block
# size and token shift (read back from the source folder), the active decode settings and presets, the bench
# metrics and the full params, and a model card with the bench table and how to decode. Entry points:
# export_card, run.
import json
from importlib import resources
from pathlib import Path
from hildanext.config import Params, as_dict
from hildanext.files import sha256_file, write_text_atomic
from hildanext.model import ModelFolderError, load_decoder, model_meta, read_model_info, save_model
from hildanext.pipeline import paths
def table_row(name: str, row: dict) -> str:
    cells = [row[k] for k in ("tpf", "tokens_per_s", "speed_vs_ar", "distinct_2", "repetition_4", "stop_share")]
    code = f"{row['pass_at_1']:.2f}" if "pass_at_1" in row else "-"
    return f"| {name} | " + " | ".join(f"{v:.2f}" for v in cells) + f" | {code} |"

def export_card(bench: dict, params: Params, out: Path, block_size: int) -> str:
    d, p = params.decode, bench["perplexity"]
    table = "\n".join(table_row(name, row) for name, row in bench["settings"].items())
    fields = {"rows": p["rows"], "bd_ppl": p["bd_elbo_bound"], "ar_ppl": p["ar"], "ratio": p["ratio"], "table": table}
    fields |= {"device": bench["device"], "out": out, "block_size": d.block_size or block_size}
    fields |= {k: getattr(d, k) for k in ("tau_mask", "tau_edit", "max_post_steps", "temperature")}
    s_mode, q_mode = d.presets.S_MODE, d.presets.Q_MODE
    fields |= {"s_mask": s_mode.tau_mask, "s_edit": s_mode.tau_edit, "q_mask": q_mode.tau_mask,
               "q_edit": q_mode.tau_edit}
    return resources.files("hildanext").joinpath("assets/export_card.md").read_text().format(**fields)

def run(params: Params, tracker) -> dict:
    if not paths.metrics("bench").exists():
        raise ModelFolderError(f"{paths.metrics('bench')} is missing; run the bench stage first (`hildanext bench`)")
    bench = json.loads(paths.metrics("bench").read_text())
    source, out = Path(bench["model"] if params.bench.model == "best" else params.bench.model), paths.EXPORT
    model, tokenizer = load_decoder(source, params.runtime)
    info = read_model_info(source, tokenizer)
    trained = info.block_size
    meta = model_meta(tokenizer, "export", params, trained, sha256_file(source / "hildanext.json"), paths.commit())
    results = {"perplexity": bench["perplexity"], "settings": bench["settings"]}
    meta |= {"shift": info.shift, "source": str(source), "decode": as_dict(params.decode), "bench": results}
    save_model(model, tokenizer, out, meta)
    write_text_atomic(out / "README.md", (out / "README.md").read_text() + export_card(bench, params, out, trained))
    d = params.decode
    return {"block_size": d.block_size or trained, "tau_mask": d.tau_mask, "tau_edit": d.tau_edit}
