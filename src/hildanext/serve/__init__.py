# hildanext's HTTP server: FastAPI over the first existing serve.model_candidates folder (or a tiny random dummy),
# with /health, /generate, /jobs, the OpenAI-compatible /v1 API (lm-eval's local-completions included) and
# vLLM's /tokenize routes, one worker thread owning the model.
# Entry points: hildanext.serve.app.create_app, hildanext.serve.app.run_server (`hildanext serve`).
