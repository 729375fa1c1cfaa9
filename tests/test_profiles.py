# Runtime profiles: precedence (explicit runtime key > profile > cpu default), the gtx1080 Pascal-safe values
# and its refusal of a torch without sm_61 kernels, micro-batch/accumulation splitting of the recipe batch,
# and the mask-row-only embedding training (other rows, and the tied head, stay bit-identical).
import importlib.util
import pytest
import torch
from hildanext.config import ParamsError, RuntimeParams
from hildanext.profiles import PROFILES, check_device, make_optimizer, micro_steps, resolve_profile
def test_precedence_explicit_over_profile_over_default():
    assert resolve_profile(RuntimeParams()) == PROFILES["cpu"]
    gtx = resolve_profile(RuntimeParams(profile="gtx1080"))
    assert (gtx.micro_batch, gtx.grad_ckpt, gtx.max_vram_pct, gtx.autocast, gtx.sdpa_backend, gtx.adapter) == (1, True, 0.85, "none", "mem_efficient", "lora")
    mixed = resolve_profile(RuntimeParams(profile="gtx1080", micro_batch=2, grad_ckpt=False, adapter="none"))
    assert (mixed.micro_batch, mixed.grad_ckpt, mixed.max_vram_pct, mixed.adapter) == (2, False, 0.85, "none")
    assert resolve_profile(RuntimeParams(profile="ampere")).autocast == "bf16"

def test_gtx1080_refuses_torch_without_sm61():
    if "sm_61" in torch.cuda.get_arch_list():
        pytest.skip("this torch ships sm_61 kernels")
    with pytest.raises(ParamsError, match="gtx1080 needs a torch build with sm_61 kernels") as err:
        check_device(resolve_profile(RuntimeParams(profile="gtx1080")))
    assert "\n" not in str(err.value)
    check_device(PROFILES["cpu"])

def test_micro_batch_splits_the_recipe_batch():
    assert micro_steps(8, PROFILES["gtx1080"]) == (1, 8) and micro_steps(8, PROFILES["cpu"]) == (8, 1)
    with pytest.raises(ParamsError, match="runtime.micro_batch 3 does not divide the recipe batch size 8"):
        micro_steps(8, resolve_profile(RuntimeParams(micro_batch=3)))

def test_mask_row_training_leaves_other_rows_untouched(tiny_qwen3):
    model = tiny_qwen3(vocab_size=128).train()
    profile = resolve_profile(RuntimeParams(train_embeddings="mask_row"))
    optimizer = make_optimizer(model, profile, 1e-2, (0.9, 0.95), 0.1, mask_id=120)
    before = model.get_input_embeddings().weight.detach().clone()
    for _ in range(3):
        x = torch.tensor([[1, 120, 3, 120, 5, 6]])
        model(input_ids=x, labels=x).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = model.get_input_embeddings().weight.detach()
    changed = (after != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == [120] and model.get_output_embeddings().weight is model.get_input_embeddings().weight

@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed")
def test_adamw8bit_without_bitsandbytes_says_what_to_install(tiny_qwen3):
    with pytest.raises(ParamsError, match="pip install 'hildanext\\[lowmem\\]'"):
        make_optimizer(tiny_qwen3(), resolve_profile(RuntimeParams(optimizer="adamw8bit")), 1e-3, (0.9, 0.95), 0.0, 0)
