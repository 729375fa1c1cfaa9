# DVC stage export: models/sft (bench.model) + metrics/bench.json -> models/export (served, dvc-pulled).
# Same library call as `hildanext export`: hildanext.pipeline.run_stage("export").
# Run: python -P stages/export.py (-P: stages/ must not shadow stdlib modules).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("export")
