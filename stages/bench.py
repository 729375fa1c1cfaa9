# DVC stage bench: models/sft (bench.model) + eval data -> metrics/bench.json and metrics/bench_settings.csv.
# Same library call as `hildanext bench`: hildanext.pipeline.run_stage("bench").
# Run: python -P stages/bench.py (-P: stages/ must not shadow stdlib modules).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("bench")
