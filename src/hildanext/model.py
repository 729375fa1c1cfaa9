# The Qwen3 dLLM wrapper: load a local Hugging Face Qwen3 folder, add <|mask|>, run forward passes under an
# explicit 4D attention mask (bool for sdpa, additive float for eager), save with provenance.
# Entry points: load_model, add_mask_token, special_ids, causal_allowed, attention_mask_4d, masked_logits,
# save_model, demo_qwen3_config, peak_memory_mb. A plain save_pretrained reload is causal; decoding needs
# hildanext's decoder (the model card and hildanext.json say so).
import math, resource
from importlib import resources
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config
from hildanext.config import DemoParams, RuntimeParams, as_dict
from hildanext.files import atomic_dir, git_commit, sha256_file, write_json_atomic, write_text_atomic
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
class ModelFolderError(FileNotFoundError):
    pass

def resolve_device(runtime: RuntimeParams) -> torch.device:
    if runtime.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(runtime.device)

def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def check_model_folder(path: Path) -> None:
    missing = [name for name in MODEL_FILES if not (Path(path) / name).exists()]
    if missing:
        raise ModelFolderError(f"{path}: not a Hugging Face model folder (missing {', '.join(missing)})")

def load_model(path: Path, runtime: RuntimeParams):
    check_model_folder(path)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=DTYPES[runtime.dtype], attn_implementation=runtime.attn_implementation)
    return model.to(resolve_device(runtime)).eval(), tokenizer

def add_mask_token(model, tokenizer, mask_token: str = "<|mask|>") -> int:
    tokenizer.add_special_tokens({"mask_token": mask_token})
    mask_id = tokenizer.convert_tokens_to_ids(mask_token)
    rows = model.get_input_embeddings().weight.shape[0]
    if mask_id >= rows:
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64, mean_resizing=False)
    model.config.mask_token_id = mask_id
    return mask_id

def special_ids(tokenizer) -> dict:
    stop = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    return {"mask_id": tokenizer.mask_token_id, "pad_id": tokenizer.pad_token_id, "eos_id": tokenizer.eos_token_id, "stop_ids": stop}

def causal_allowed(length: int, device=None) -> torch.Tensor:
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()

def attention_mask_4d(allowed: torch.Tensor, impl: str, dtype: torch.dtype) -> torch.Tensor:
    mask = allowed[None] if allowed.dim() == 2 else allowed
    mask = mask[:, None]
    if impl == "eager":
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    return mask

def masked_logits(model, input_ids: torch.Tensor, allowed: torch.Tensor, position_ids=None) -> torch.Tensor:
    assert allowed.shape[-1] == allowed.shape[-2] == input_ids.shape[-1], "allowed must be [L, L] or [B, L, L]"
    mask = attention_mask_4d(allowed.to(input_ids.device), model.config._attn_implementation, model.dtype)
    return model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False).logits

def model_meta(tokenizer, stage: str, params, block_size: int, input_hash: str, root: Path) -> dict:
    note = "A plain AutoModelForCausalLM load is a causal model; block-diffusion decoding needs hildanext's decoder."
    meta = {"format": "hildanext/1", "stage": stage, "mask_token": tokenizer.mask_token, **special_ids(tokenizer)}
    meta |= {"block_size": block_size, "note": note, "git_commit": git_commit(root), "input_hash": input_hash}
    return meta | {"params": as_dict(params) if params is not None else None}

def save_model(model, tokenizer, out: Path, meta: dict) -> Path:
    out = Path(out)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta = meta | {"tokenizer_sha256": sha256_file(tmp / "tokenizer.json")}
        write_json_atomic(tmp / "hildanext.json", meta)
        card = resources.files("hildanext").joinpath("assets/model_card.md").read_text()
        base = (meta.get("params") or {}).get("model", {}).get("base", "unknown")
        mask = {"mask_token": meta["mask_token"] or "none yet (the init stage adds it)", "mask_id": meta["mask_id"]}
        write_text_atomic(tmp / "README.md", card.format(name=out.name, base=base, commit=meta["git_commit"], **(meta | mask)))
    return out

def demo_qwen3_config(tokenizer, p: DemoParams) -> Qwen3Config:
    rows = math.ceil((len(tokenizer) + 1) / p.vocab_multiple) * p.vocab_multiple
    sizes = {"hidden_size": p.hidden_size, "intermediate_size": p.intermediate_size, "num_hidden_layers": p.num_layers, "head_dim": p.head_dim}
    heads = {"num_attention_heads": p.num_heads, "num_key_value_heads": p.num_kv_heads}
    ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id, "bos_token_id": None}
    rope = {"rope_type": "default", "rope_theta": 1e6}
    return Qwen3Config(vocab_size=rows, max_position_embeddings=4096, tie_word_embeddings=True, rope_parameters=rope, **sizes, **heads, **ids)
