# hildanext: turns the autoregressive Qwen3-0.6B into a LLaDA2.1-style block-diffusion LM through a DVC
# pipeline (demo_base, init, ...), tracked in MLflow, and serves it.
# Entry points: the `hildanext` CLI (hildanext.cli:app) and hildanext.pipeline.run_stage.
from importlib.metadata import version
__version__ = version("hildanext")
