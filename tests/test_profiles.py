# Runtime profiles: precedence (explicit runtime key > profile > cpu default, values read from PROFILES), the
# gtx1080 refusal of a torch without sm_61 kernels, micro-batch/accumulation splitting of any recipe batch,
# and the mask-row-only embedding training (other rows, and the tied head, stay bit-identical); the SDPA
# backend choice by compute capability, and fp16 autocast with loss scaling.
import dataclasses, importlib.util
import pytest
import torch
from torch.nn.attention import SDPBackend
from hildanext.config import ParamsError, RuntimeParams
from hildanext.train.profiles import (PROFILES, Profile, check_device, check_precision, compute_context,
                                      make_optimizer, make_scaler, micro_steps, resolve_profile, sdpa_backends)
from hildanext.train.loop import LoopSpec, optimizer_step
def test_precedence_explicit_over_profile_over_default():
    assert resolve_profile(RuntimeParams()) == PROFILES["cpu"]
    assert all(resolve_profile(RuntimeParams(profile=name)) == profile for name, profile in PROFILES.items())
    cpu, gtx = PROFILES["cpu"], PROFILES["gtx1080"]
    knobs = [f.name for f in dataclasses.fields(Profile) if f.name != "name"]
    differing = [k for k in knobs if getattr(cpu, k) != getattr(gtx, k)]
    assert {"micro_batch", "grad_ckpt", "adapter"} <= set(differing)
    explicit = {k: getattr(cpu, k) for k in ("micro_batch", "grad_ckpt", "adapter")}
    mixed = resolve_profile(RuntimeParams(profile="gtx1080", **explicit))
    assert mixed == dataclasses.replace(gtx, **explicit) and mixed.max_vram_pct == gtx.max_vram_pct != cpu.max_vram_pct
    everything = resolve_profile(RuntimeParams(profile="gtx1080", **{k: getattr(cpu, k) for k in knobs}))
    assert everything == dataclasses.replace(cpu, name="gtx1080")
    assert resolve_profile(RuntimeParams(profile="ampere")).autocast == PROFILES["ampere"].autocast != cpu.autocast

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

def test_sdpa_backend_is_a_function_of_capability_and_setting():
    assert sdpa_backends("auto", (6, 1)) is None and sdpa_backends("auto", (9, 0)) is None
    assert sdpa_backends("mem_efficient", (6, 1)) == [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    assert sdpa_backends("mem_efficient", (3, 7)) == [SDPBackend.MATH]
    assert sdpa_backends("math", (6, 1)) == [SDPBackend.MATH] and sdpa_backends("math", (8, 0)) == [SDPBackend.MATH]
    assert sdpa_backends("math", None) is None and sdpa_backends("mem_efficient", None) is None

def test_precision_refusals_name_the_key():
    with pytest.raises(ParamsError, match="runtime.dtype: float16 weights are for inference only"):
        check_precision(RuntimeParams(dtype="float16"), PROFILES["cpu"])
    with pytest.raises(ParamsError,
                       match="runtime.autocast: bf16 needs fp32 master weights, but runtime.dtype is bfloat16"):
        check_precision(RuntimeParams(dtype="bfloat16", profile="ampere"), PROFILES["ampere"])
    check_precision(RuntimeParams(autocast="fp16"), resolve_profile(RuntimeParams(autocast="fp16")))

def test_fp16_autocast_trains_fp32_master_weights_with_a_grad_scaler(tiny_qwen3):
    profile = resolve_profile(RuntimeParams(autocast="fp16"))
    model, device = tiny_qwen3().train(), torch.device("cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    dtypes = []
    def loss_at(net, batch, step, micro):
        with compute_context(profile, device):
            out = net(input_ids=batch, labels=batch)
        dtypes.append(out.logits.dtype)
        return out
    spec = LoopSpec(4, lambda s: ("p", 4), lambda s: 1e-3, loss_at, lambda m, s: {},
                    scaler=make_scaler(profile, device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(4):
        optimizer_step(model, optimizer, spec, step, [ids])
    assert set(dtypes) == {torch.float16} and all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    trained, scale = {k: v.clone() for k, v in model.state_dict().items()}, spec.scaler.get_scale()
    spec.loss_at = lambda net, batch, step, micro: type("Out", (),
                                                        {"loss": loss_at(net, batch, step, micro).loss * 6e4})()
    optimizer_step(model, optimizer, spec, 4, [ids])
    assert (spec.scaler.get_scale() == scale / 2
            and all(torch.equal(trained[k], v) for k, v in model.state_dict().items()))
    assert make_scaler(PROFILES["cpu"], device) is None

def test_restore_brings_back_the_loss_scale(tmp_path):
    from hildanext.train.setup import restore
    lin = torch.nn.Linear(2, 2)
    optimizer, scaler, loaded = torch.optim.AdamW(lin.parameters()), torch.amp.GradScaler("cpu"), []
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    state = {"loader": {"pos": 3}, "scaler": torch.amp.GradScaler("cpu", init_scale=512.0).state_dict()}
    restore(tmp_path, state, optimizer, type("Loader", (), {"load_state": lambda self, s: loaded.append(s)})(), scaler)
    assert scaler.get_scale() == 512.0 and loaded == [{"pos": 3}]
