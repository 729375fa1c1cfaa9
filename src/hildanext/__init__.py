# hildanext: turns the autoregressive Qwen3-0.6B into a LLaDA2.1-style block-diffusion LM through a DVC
# pipeline (demo_base, init, ...), tracked in MLflow, and serves it.
# Entry points: the `hildanext` CLI (hildanext.cli:app) and hildanext.pipeline.run_stage; importing it registers
# the lm-eval models "hildanext" and "hf-counted" (lazily: lm-eval imports hildanext.eval.harness on first use).
from importlib.metadata import version
from lm_eval.api.registry import model_registry
__version__ = version("hildanext")
model_registry.register("hildanext", target="hildanext.eval.harness:HildanextLM")
model_registry.register("hf-counted", target="hildanext.eval.harness:CountingHFLM")
