# DVC stage eval: models/export (eval.model) and the AR base on lm-eval tasks -> data/eval, metrics/eval.json.
# Same library call as `hildanext eval`: hildanext.pipeline.run_stage("eval").
# Run: python -P stages/eval.py (-P: stages/ must not shadow stdlib modules).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("eval")
