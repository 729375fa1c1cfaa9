# The demo_base stage (`hildanext demo-base`): the demo corpus -> models/demo-base, a tiny Qwen3 over a
# trained BPE tokenizer, pretrained autoregressively (params demo_base), with metrics/demo_base.json; with
# another model.base it writes a skip marker instead. Entry point: run(params, tracker).
import hashlib
from hildanext.config import Params
from hildanext.data.demo_corpus import demo_stories
from hildanext.files import write_json_atomic
from hildanext.model import model_meta, save_model
from hildanext.pipeline import paths
from hildanext.train.demo import build_demo_base
def run(params: Params, tracker) -> dict:
    p, out, metrics_file = params.demo_base, paths.DEMO_BASE, paths.metrics("demo_base")
    if params.model.base != "demo":
        skipped = {"format": "hildanext/1", "stage": "demo_base", "skipped": f"model.base is {params.model.base!r}"}
        write_json_atomic(out / "hildanext.json", skipped)
        write_json_atomic(metrics_file, {})
        return {}
    stories = demo_stories(p.stories, p.seed)
    model, tokenizer, metrics = build_demo_base(stories, p, params.runtime.seed, tracker.log)
    corpus_hash = hashlib.sha256("\n".join(stories).encode()).hexdigest()
    meta = model_meta(tokenizer, "demo_base", params, 1, corpus_hash, paths.commit()) | {"metrics": metrics}
    save_model(model, tokenizer, out, meta)
    write_json_atomic(metrics_file, metrics)
    return metrics
