# DVC stage demo_base: builds the offline demo base in models/demo-base (only when model.base is demo).
# Same library call as `hildanext demo-base`: hildanext.pipeline.run_stage("demo_base").
# Run: python -P stages/demo_base.py (-P: stages/ must not shadow stdlib modules such as tokenize).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("demo_base")
