# LoRA / QLoRA training through peft (runtime.adapter = lora, the gtx1080 default; shape in params `lora`):
# adapters on the chosen projections plus a trainable <|mask|> embedding row (peft trainable_token_indices),
# optionally over a 4-bit NF4 base (bitsandbytes, CUDA). LoRA checkpoints hold only the adapter;
# merged_weights() folds one into a full-precision copy of the base.
# Entry points: training_model (base or checkpoint + profile + LoRA), attach_lora, load_base, resume_lora,
# is_lora_checkpoint, merged_from, merged_weights, merged_model.
import tempfile
from pathlib import Path
import torch
from hildanext.config import LoraParams, Params, ParamsError, RuntimeParams
from hildanext.model import load_model
from hildanext.train.profiles import prepare_model
def is_lora_checkpoint(path: Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()

def training_model(base_dir: Path, latest: Path | None, params: Params, profile):
    lora = profile.adapter == "lora"
    if latest is not None and not lora:
        model, tokenizer = load_model(latest, params.runtime)
    else:
        model, tokenizer = load_base(base_dir, params.runtime, params.lora, profile.adapter)
    prepare_model(model, profile)
    if lora:
        model = resume_lora(model, latest) if latest is not None else attach_lora(model, params.lora,
                                                                                  tokenizer.mask_token_id)
    return model, tokenizer

def is_peft(model) -> bool:
    return hasattr(model, "peft_config")

def load_base(path: Path, runtime: RuntimeParams, p: LoraParams, adapter: str = "lora"):
    if not (adapter == "lora" and p.quantize == "4bit"):
        return load_model(path, runtime)
    if not torch.cuda.is_available():
        raise ParamsError("lora.quantize: 4bit (QLoRA) needs a CUDA GPU and bitsandbytes; "
                          "use lora.quantize=none on CPU")
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, quantization_config=quant,
                                                 attn_implementation=runtime.attn_implementation)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False), tokenizer

def attach_lora(model, p: LoraParams, mask_id: int):
    from peft import LoraConfig, get_peft_model
    config = LoraConfig(r=p.r, lora_alpha=p.alpha, lora_dropout=p.dropout, target_modules=list(p.target_modules),
                        trainable_token_indices={"embed_tokens": [mask_id]})
    return get_peft_model(model, config)

def resume_lora(model, checkpoint: Path):
    from peft import PeftModel
    return PeftModel.from_pretrained(model, checkpoint, is_trainable=True)

def merged_from(base_dir: Path, checkpoint: Path, runtime: RuntimeParams):
    from peft import PeftModel
    base, _ = load_model(base_dir, runtime)
    return PeftModel.from_pretrained(base, checkpoint).merge_and_unload()

def merged_weights(base_dir: Path, checkpoint: Path) -> dict:
    return merged_from(base_dir, checkpoint, RuntimeParams(device="cpu")).state_dict()

def merged_model(model, base_dir: Path, runtime: RuntimeParams):
    if not is_peft(model):
        return model
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return merged_from(base_dir, Path(tmp), runtime).eval()
