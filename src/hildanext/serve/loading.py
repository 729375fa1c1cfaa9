# What the server decodes with: the first existing folder of serve.model_candidates (relative to base, the
# working directory; model.first_model_dir, the list `hildanext generate` also uses), loaded by
# hildanext.decode.engines.make_engine, or, when none exists, a tiny random Qwen3 (real transformers classes) with
# a small demo tokenizer and <|mask|>, built in-process in about a second, labelled "dummy".
# Entry points: dummy_engine, load_engine.
import logging
from pathlib import Path
import torch
from transformers import Qwen3ForCausalLM
from hildanext.config import DemoParams, Params
from hildanext.data.demo_corpus import demo_stories
from hildanext.data.demo_tokenizer import train_demo_tokenizer
from hildanext.decode.engines import Engine, engine_class, make_engine
from hildanext.model import DTYPES, add_mask_token, demo_qwen3_config, first_model_dir, resolve_device
log = logging.getLogger("hildanext.serve")
DUMMY = DemoParams(stories=200, vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                   num_kv_heads=2, head_dim=8)
def dummy_engine(params: Params) -> Engine:
    """A tiny random Qwen3 with a demo BPE tokenizer and <|mask|>; the ar engine stays ar, the others decode."""
    tokenizer = train_demo_tokenizer(demo_stories(DUMMY.stories, DUMMY.seed), DUMMY.vocab_size)
    torch.manual_seed(params.runtime.seed)
    config = demo_qwen3_config(tokenizer, DUMMY)
    config._attn_implementation = params.runtime.attn_implementation
    model = Qwen3ForCausalLM(config)
    add_mask_token(model, tokenizer, params.model.mask_token)
    model = model.to(device=resolve_device(params.runtime), dtype=DTYPES[params.runtime.dtype]).eval()
    return engine_class("ar" if params.serve.engine == "ar" else "diffusion")(model, tokenizer, params, None)

def load_engine(params: Params, base: Path) -> tuple[Engine, str, Path | None]:
    """(engine, label, folder): the first model candidate under base, else the dummy."""
    found = first_model_dir(params.serve.model_candidates, base)
    if found is None:
        log.warning("no model folder among %s under %s; serving the tiny random dummy model",
                    ", ".join(params.serve.model_candidates), Path(base).resolve())
        return dummy_engine(params), "dummy", None
    name, path = found
    log.info("serving %s with the %s engine", path, params.serve.engine)
    return make_engine(params.serve.engine, path, params), name, path.resolve()
