# A model folder: load a local Hugging Face Qwen3 folder (load_model; load_decoder also wants <|mask|>), add
# <|mask|>, run forward passes under an explicit 4D attention mask (bool for sdpa, additive float for eager), save
# with provenance (save_model, model_meta), and read back what the folder says about itself (read_model_info ->
# ModelInfo from hildanext.json, else from the tokenizer; recorded_params; first_model_dir over candidates).
# Tokenizer facts: token_id, tokenizer_info, suppressed_ids, chat_text, encode_prompt. Also demo_qwen3_config and
# peak_memory_mb.
import json, math, resource
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config
from hildanext.config import DemoParams, RuntimeParams, as_dict
from hildanext.files import atomic_dir, sha256_file, write_json_atomic, write_text_atomic
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
STOP_TOKENS = ("<|endoftext|>", "<|im_end|>")
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
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=DTYPES[runtime.dtype],
                                                 attn_implementation=runtime.attn_implementation)
    return model.to(resolve_device(runtime)).eval(), tokenizer

def load_decoder(path: Path, runtime: RuntimeParams):
    """load_model for block-diffusion decoding: the folder's tokenizer must hold <|mask|>."""
    model, tokenizer = load_model(Path(path), runtime)
    if tokenizer.mask_token_id is None:
        raise ModelFolderError(f"{path}: its tokenizer has no mask token; decode a converted folder (init or later)")
    return model, tokenizer

def add_mask_token(model, tokenizer, mask_token: str = "<|mask|>") -> int:
    tokenizer.add_special_tokens({"mask_token": mask_token})
    mask_id = tokenizer.convert_tokens_to_ids(mask_token)
    rows = model.get_input_embeddings().weight.shape[0]
    if mask_id >= rows:
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64, mean_resizing=False)
    model.config.mask_token_id = mask_id
    return mask_id

@dataclass(frozen=True)
class ModelInfo:
    """What decoding must honour about a folder; stop_ids are the stop tokens besides eos."""
    eos_id: int
    mask_id: int | None = None
    stop_ids: tuple[int, ...] = ()
    pad_id: int | None = None
    block_size: int | None = None
    shift: bool = False
    def record(self) -> dict:
        """The hildanext.json keys (its stop_ids list eos first; shift: position i predicts token i + 1)."""
        ids = {"mask_id": self.mask_id, "pad_id": self.pad_id, "eos_id": self.eos_id}
        return ids | {"stop_ids": [self.eos_id, *self.stop_ids], "block_size": self.block_size, "shift": self.shift}

def token_id(tokenizer, token: str) -> int | None:
    found = tokenizer.convert_tokens_to_ids(token)
    return None if found is None or found == tokenizer.unk_token_id else found

def tokenizer_info(tokenizer, block_size: int | None = None, shift: bool = False) -> ModelInfo:
    """The ids looked up in the tokenizer: its eos (else the first stop token), <|endoftext|> and <|im_end|>."""
    found = [i for i in (token_id(tokenizer, t) for t in STOP_TOKENS) if i is not None]
    eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else found[0]
    stops = tuple(dict.fromkeys(i for i in found if i != eos_id))
    return ModelInfo(eos_id, tokenizer.mask_token_id, stops, tokenizer.pad_token_id, block_size, shift)

def info_from_record(meta: dict) -> ModelInfo:
    """A hildanext.json record as ModelInfo; keys a folder written earlier lacks (shift too) take their defaults."""
    stops = [i for i in meta.get("stop_ids") or () if i is not None]
    eos_id = meta.get("eos_id") if meta.get("eos_id") is not None else stops[0]
    known = {f.name for f in fields(ModelInfo)} - {"eos_id", "stop_ids", "shift"}
    rest = {key: value for key, value in meta.items() if key in known}
    stop_ids = tuple(dict.fromkeys(i for i in stops if i != eos_id))
    return ModelInfo(eos_id=eos_id, stop_ids=stop_ids, shift=bool(meta.get("shift", False)), **rest)

def read_meta(path: Path | None) -> dict | None:
    meta = Path(path) / "hildanext.json" if path is not None else None
    return json.loads(meta.read_text()) if meta is not None and meta.exists() else None

def read_model_info(path: Path | None, tokenizer=None, block_size: int | None = None) -> ModelInfo:
    """The folder's hildanext.json; without one (a plain folder, no folder) the tokenizer's ids and block_size."""
    meta = read_meta(path)
    if meta is not None and "eos_id" in meta:
        return info_from_record(meta)
    if tokenizer is None:
        raise ModelFolderError(f"{path}: no hildanext.json and no tokenizer to look the special ids up in")
    return tokenizer_info(tokenizer, block_size)

def recorded_params(path: Path | None) -> dict | None:
    """The params a pipeline stage recorded in the folder's hildanext.json (None when it records none)."""
    return (read_meta(path) or {}).get("params")

def first_model_dir(candidates, base: Path) -> tuple[str, Path] | None:
    """(candidate as written, base / candidate) for the first candidate holding a config.json."""
    for name in candidates:
        if (Path(base) / name / "config.json").exists():
            return name, Path(base) / name
    return None

def suppressed_ids(tokenizer, vocab_rows: int, keep_ids) -> list[int]:
    """Unused embedding rows, special and added tokens (the mask included), except keep_ids (the stop tokens)."""
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    special |= {tokenizer.mask_token_id} if tokenizer.mask_token_id is not None else set()
    return sorted((special | set(range(len(tokenizer), vocab_rows))) - set(keep_ids))

def chat_text(tokenizer, messages: list[dict]) -> str:
    """OpenAI-style messages rendered with the tokenizer's chat template, thinking off, ready for the reply."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)

def encode_prompt(tokenizer, prompt: str, chat: bool = False) -> list[int]:
    if chat:
        prompt = chat_text(tokenizer, [{"role": "user", "content": prompt}])
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]

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

def model_meta(tokenizer, stage: str, params, block_size: int, input_hash: str, commit: str) -> dict:
    """hildanext.json's provenance: format, stage, ids, block size, shift, note, code commit, input hash, params."""
    note = "A plain AutoModelForCausalLM load is a causal model; block-diffusion decoding needs hildanext's decoder."
    meta = {"format": "hildanext/1", "stage": stage, "mask_token": tokenizer.mask_token}
    meta |= tokenizer_info(tokenizer, block_size, recorded_shift(tokenizer, params)).record()
    meta |= {"note": note, "git_commit": commit, "input_hash": input_hash}
    return meta | {"params": as_dict(params) if params is not None else None}

def recorded_shift(tokenizer, params) -> bool:
    """params.objective.shift for a folder with <|mask|> (a diffusion folder); False without params or mask."""
    return bool(params is not None and tokenizer.mask_token is not None and params.objective.shift)

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
        text = card.format(name=out.name, base=base, commit=meta["git_commit"], **(meta | mask))
        write_text_atomic(tmp / "README.md", text)
    return out

def demo_qwen3_config(tokenizer, p: DemoParams) -> Qwen3Config:
    rows = math.ceil((len(tokenizer) + 1) / p.vocab_multiple) * p.vocab_multiple
    sizes = {"hidden_size": p.hidden_size, "intermediate_size": p.intermediate_size, "num_hidden_layers": p.num_layers,
             "head_dim": p.head_dim}
    heads = {"num_attention_heads": p.num_heads, "num_key_value_heads": p.num_kv_heads}
    ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id, "bos_token_id": None}
    rope = {"rope_type": "default", "rope_theta": 1e6}
    return Qwen3Config(vocab_size=rows, max_position_embeddings=4096, tie_word_embeddings=True, rope_parameters=rope,
                       **sizes, **heads, **ids)
