# DVC stage distill: models/merged + data/distill -> models/distilled (sequence-level KD on the AR base's text,
# logit KD, semi-AR states, CAP). Same library call as `hildanext distill`: hildanext.pipeline.run_stage("distill").
# Run: python -P stages/distill.py (-P: stages/ must not shadow stdlib modules).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("distill")
