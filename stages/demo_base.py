# DVC stage demo_base: builds the offline demo base in models/demo-base (only when model.base is demo).
# Same library call as `hildanext demo-base`: hildanext.pipeline.run_stage("demo_base").
# Run: python stages/demo_base.py (reads params.yaml in the working directory).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("demo_base")
