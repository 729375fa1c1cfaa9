# DVC stage merge: models/wsd checkpoints of the final phase -> models/merged (mean of the top-k by eval loss).
# Same library call as `hildanext merge`: hildanext.pipeline.run_stage("merge").
# Run: python -P stages/merge.py (-P: stages/ must not shadow stdlib modules such as tokenize).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("merge")
