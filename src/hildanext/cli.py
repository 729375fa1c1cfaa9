# The `hildanext` command line (typer). Stage commands call hildanext.pipeline.run_stage, exactly like the
# DVC entry scripts in stages/; every command takes --params and repeatable --set key=value (the dotted keys
# of `dvc exp run -S`). Known failures (bad params, missing model folder, offline fetch) print one line, exit 2.
# Stage commands are named like their stage (demo-base, init, prepare, tokenize, sft-data, distill-data, wsd, merge,
# sft, distill, bench, export, eval; older names kept as aliases, see DESIGN.md); also fetch-model, fetch-data,
# apply-overlay, generate, serve, smoke-test, and lm-eval (lm-evaluation-harness's own CLI with the models registered).
import functools
from pathlib import Path
import typer
from hildanext.config import ParamsError
app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="hildanext: Qwen3 -> LLaDA2.1-style block-diffusion LM, as a DVC pipeline.")
PARAMS = typer.Option(Path("params.yaml"), "--params", help="params file")
SET = typer.Option([], "--set", help="override a dotted key, e.g. --set demo_base.steps=50 (repeatable)")
ONLY = typer.Option([], "--only", help="dolma or tinystories (repeatable; default both)")
MODEL_DIR = typer.Option(None, "--model", help="model folder; default: the first existing folder of "
                         "serve.model_candidates (export, sft, merged, init)")
def one_line_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from hildanext.data.sources import DataError
        from hildanext.data.hub import FetchError
        from hildanext.train.merge import MergeError
        from hildanext.train.loop import TrainingError
        from hildanext.model import ModelFolderError
        try:
            return fn(*args, **kwargs)
        except (ParamsError, ModelFolderError, FetchError, DataError, TrainingError, MergeError) as e:
            typer.echo(f"hildanext: error: {e}", err=True)
            raise typer.Exit(2) from None
    return wrapper

def stage_command(stage: str, help_text: str, alias: str | None = None) -> None:
    """The command named like the stage (dashes for underscores), plus its older name when it had one."""
    @one_line_errors
    def command(params: Path = PARAMS, set_: list[str] = SET):
        from hildanext.pipeline import run_stage
        typer.echo(f"{stage}: {run_stage(stage, params, set_)}")
    name = stage.replace("_", "-")
    app.command(name, help=help_text)(command)
    if alias:
        app.command(alias, help=f"Alias of `{name}`.")(command)

STAGE_HELP = {
    "demo_base": ("Build the offline demo base (tokenizer + tiny Qwen3 pretrained AR) in models/demo-base.", None),
    "init": ("Add <|mask|> to model.base and write models/init.", "init-model"),
    "prepare": ("Stream prepare.sources into normalised, deduplicated train/eval documents (data/processed).",
                "prepare-data"),
    "tokenize": ("Tokenize and pack data/processed into seq_len rows with document ids (data/tokenized).", None),
    "sft_data": ("Render sft_data.sources chats (OpenAI messages JSONL or demo) with the chat template into packed "
                 "rows with assistant-only supervision (data/sft).", "prepare-sft"),
    "distill_data": ("The AR base writes continuations of train-split openings and answers to train-split SFT prompts "
                     "(resumable shards, packed rows in data/distill).", None),
    "wsd": ("WSD conversion (warmup, stable, decay) with M2T+T2T from models/init and data/tokenized into models/wsd; "
            "resumes when params match.", "convert-wsd"),
    "merge": ("Average the top-k checkpoints of the final WSD phase (merge.top_k) into models/merged.", None),
    "sft": ("SFT with the M2T+T2T mixture (response-only masking, optional complementary masks and MTF) from "
            "models/merged and data/sft into models/sft.", None),
    "distill": ("Distil the AR base into models/merged on data/distill (M2T+T2T on the teacher's text, logit KD, "
                "semi-AR states, CAP) into models/distilled.", None),
    "bench": ("Benchmark bench.model: ELBO perplexity bound vs the AR base, generations (active, S, Q, AR), micro "
              "HumanEval pass@1 (metrics/bench.json).", None),
    "eval": ("Score eval.model and the AR base side by side with lm-evaluation-harness on eval.tasks (the shipped "
             "offline tasks by default) into metrics/eval.json.", None),
    "export": ("Export bench.model with decode settings, bench metrics and a model card into models/export (what dvc "
               "pull brings).", None),
}
for stage, (help_text, alias) in STAGE_HELP.items():
    stage_command(stage, help_text, alias)
@app.command("fetch-model", help="Download model.hub_id at model.revision into model.local_dir (needs the network).")
@one_line_errors
def fetch_model(params: Path = PARAMS, set_: list[str] = SET):
    from hildanext.config import load_params
    from hildanext.data.hub import fetch_model as fetch
    p = load_params(params, set_).model
    typer.echo(f"fetch-model: params from {params}")
    typer.echo(f"fetched into {fetch(p, Path(p.local_dir))}")

@app.command("fetch-data", help="Download Dolma v1_6-sample shards and TinyStories files (prepare.fetch) into data/raw "
             "(needs the network).")
@one_line_errors
def fetch_data(params: Path = PARAMS, set_: list[str] = SET, only: list[str] = ONLY):
    from hildanext.config import load_params
    from hildanext.data.fetch import fetch_data as fetch
    p = load_params(params, set_).prepare.fetch
    typer.echo(f"fetch-data: params from {params}")
    summary = fetch(p, Path(p.dest), tuple(only) or ("dolma", "tinystories"))
    done, skipped, size = len(summary["downloaded"]), len(summary["skipped"]), summary["bytes"]
    typer.echo(f"fetch-data: {done} downloaded, {skipped} already complete, {size} bytes into {summary['dest']}")

@app.command("apply-overlay", help="Merge an overlay (e.g. overlays/ci.yaml) into the params file, validating it.")
@one_line_errors
def apply_overlay(overlay: Path, params: Path = PARAMS):
    from hildanext.config import merge_overlay
    merge_overlay(params, overlay)
    typer.echo(f"{params}: merged {overlay}")

def builtin_params(overrides):
    from hildanext.config import Params, apply_overrides, as_dict, validate
    return validate(apply_overrides(as_dict(Params()), overrides), "built-in defaults --set")

def recorded_or_defaults(path: Path, overrides, folder: Path | None):
    """The params the folder's hildanext.json records, else the built-in defaults; --set applies to either."""
    from hildanext.config import apply_overrides, validate
    from hildanext.model import recorded_params
    recorded = recorded_params(folder)
    if recorded is not None:
        meta = folder / "hildanext.json"
        return validate(apply_overrides(recorded, overrides), f"{meta} --set"), f"{meta} (no {path} here)"
    why = f"{folder}/hildanext.json records none" if folder is not None else "no model folder"
    return builtin_params(overrides), f"built-in defaults (no {path}, {why})"

def command_params(path: Path, overrides, model: Path | None, need_model: bool = False):
    """(params, folder): --params if it exists, else the folder's recorded params, else the defaults (one line says)."""
    from hildanext.config import load_params
    from hildanext.model import ModelFolderError, first_model_dir
    exists = Path(path).exists()
    params = load_params(path, overrides) if exists else builtin_params(overrides)
    found = first_model_dir(params.serve.model_candidates, Path("."))
    folder = Path(model) if model is not None else found[1] if found else None
    if need_model and folder is None:
        where, here = ", ".join(params.serve.model_candidates), Path(".").resolve()
        raise ModelFolderError(f"no model folder: none of {where} exists under {here}; pass --model PATH")
    params, source = (params, str(path)) if exists else recorded_or_defaults(path, overrides, folder)
    typer.echo(f"params: {source}", err=True)
    return params, folder

@app.command("generate", help="Decode a continuation of PROMPT (plain text, or --chat) with the block-diffusion "
             "decoder; prints the text and forwards, TPF, tokens/s.")
@one_line_errors
def generate(
    prompt: str,
    mode: str = typer.Option(None, "--mode", help="S (speed) or Q (quality), the presets of decode.presets; "
                             "default: the decode params"),
    tau_mask: float = typer.Option(None, "--tau-mask", help="unmask threshold; overrides the mode"),
    tau_edit: float = typer.Option(None, "--tau-edit", help="edit threshold (0 edits every changed token, 1 disables "
                                   "editing); overrides the mode"),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens"),
    seed: int = typer.Option(None, "--seed"),
    trace: bool = typer.Option(False, "--trace", help="print the per-pass log (block, step, masks left, unmasked, "
                               "edited); with --remask also one line per remask window"),
    chat: bool = typer.Option(False, "--chat", help="wrap PROMPT in the tokenizer's chat template (thinking off)"),
    remask: bool = typer.Option(None, "--remask/--no-remask", help="run the remask pass after decoding "
                                "(decode.remask); default decode.remask_pass"),
    model: Path = MODEL_DIR,
    params: Path = PARAMS,
    set_: list[str] = SET,
):
    from hildanext.decode.engines import Request, make_engine
    from hildanext.decode.report import generate_lines
    chosen, folder = command_params(params, set_, model, need_model=True)
    request = Request(prompt=prompt, mode=mode, tau_mask=tau_mask, tau_edit=tau_edit, max_new_tokens=max_new_tokens,
                      seed=seed, chat=chat, remask=remask)
    for line in generate_lines(make_engine("diffusion", folder, chosen), request, trace):
        typer.echo(line)

@app.command("serve", help="Serve the first existing folder of serve.model_candidates (a tiny random dummy when none "
             "exists) over HTTP: /health, /generate, /jobs and the OpenAI API under /v1.")
@one_line_errors
def serve(
    host: str = typer.Option(None, "--host", help="interface to listen on; default serve.host (127.0.0.1)"),
    port: int = typer.Option(None, "--port", help="TCP port; default serve.port (8000)"),
    params: Path = PARAMS,
    set_: list[str] = SET,
):
    from hildanext.serve.app import run_server
    run_server(command_params(params, set_, None)[0], host, port)

@app.command("smoke-test", help="One-minute end-to-end check on the demo assets: load, one WSD step, one SFT batch, "
             "one decode per preset, then OK.")
def smoke_test(params: Path = PARAMS, set_: list[str] = SET):
    from hildanext.pipeline.smoke import smoke_lines
    try:
        for line in smoke_lines(*command_params(params, set_, None)):
            typer.echo(line)
    except Exception as e:
        typer.echo(f"hildanext: smoke-test failed: {e.__class__.__name__}: {e}", err=True)
        raise typer.Exit(1) from None

LM_EVAL = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
@app.command("lm-eval", context_settings=LM_EVAL, help="lm-evaluation-harness's own command line (`lm-eval run` "
             "flags, e.g. --model hildanext --model_args pretrained=models/export,mode=S --tasks hildanext_demo) with "
             "the hildanext and hf-counted models registered and the shipped tasks on the include path.")
def lm_eval_command(ctx: typer.Context):
    import sys
    from lm_eval.__main__ import cli_evaluate
    from hildanext.eval.tasks import TASKS_DIR
    argv = list(ctx.args)
    if "--include_path" not in argv and argv[:1] not in (["ls"], ["validate"], ["-h"], ["--help"]):
        argv += ["--include_path", str(TASKS_DIR)]
    sys.argv = ["lm-eval", *argv]
    cli_evaluate()
