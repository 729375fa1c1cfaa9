# Runtime profiles: memory and precision knobs only (recipe values such as lr stay in their sections).
# Precedence: an explicit runtime key > the profile's value > the cpu default. gtx1080 = the Pascal-safe
# settings (micro-batch 1 with accumulation up to the recipe batch, gradient checkpointing, 85% VRAM cap,
# fp32 compute, PyTorch's SDPA dispatch, 8-bit AdamW, LoRA + the mask row). Entry points: PROFILES, resolve_profile
# (memoised on the frozen RuntimeParams, so a stage resolves its profile once), check_device, check_precision,
# micro_steps, prepare_model, sdpa_backends, compute_context, make_scaler, make_optimizer.
import contextlib, functools
from dataclasses import dataclass, fields
import torch
from hildanext.config import ParamsError, RuntimeParams
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
@dataclass(frozen=True)
class Profile:
    name: str
    micro_batch: int
    grad_ckpt: bool
    max_vram_pct: float
    autocast: str
    sdpa_backend: str
    optimizer: str
    train_embeddings: str
    adapter: str

PROFILES = {
    "cpu": Profile("cpu", 0, False, 1.0, "none", "auto", "adamw", "all", "none"),
    "gtx1080": Profile("gtx1080", 1, True, 0.85, "none", "auto", "adamw8bit", "mask_row", "lora"),
    "ampere": Profile("ampere", 0, False, 1.0, "bf16", "auto", "adamw", "all", "none"),
}
@functools.cache
def resolve_profile(runtime: RuntimeParams) -> Profile:
    base = PROFILES[runtime.profile]
    names = [f.name for f in fields(Profile) if f.name != "name"]
    explicit = {name: getattr(runtime, name) for name in names if getattr(runtime, name, None) is not None}
    return Profile(**{f.name: getattr(base, f.name) for f in fields(Profile)} | explicit)

def check_device(profile: Profile) -> None:
    if profile.name == "gtx1080" and "sm_61" not in torch.cuda.get_arch_list():
        raise ParamsError(f"runtime.profile: gtx1080 needs a torch build with sm_61 kernels; this torch "
                          f"{torch.__version__} has {torch.cuda.get_arch_list() or 'no CUDA'} "
                          "(install a CUDA 12.6 build)")

def check_precision(runtime: RuntimeParams, profile: Profile) -> None:
    if runtime.dtype == "float16":
        raise ParamsError("runtime.dtype: float16 weights are for inference only (pure fp16 AdamW underflows its eps "
                          "and Qwen weights can overflow); train with runtime.dtype float32 and runtime.autocast fp16")
    if profile.autocast != "none" and runtime.dtype != "float32":
        raise ParamsError(f"runtime.autocast: {profile.autocast} needs fp32 master weights, but runtime.dtype is "
                          f"{runtime.dtype}")

def micro_steps(batch_size: int, profile: Profile) -> tuple[int, int]:
    micro = profile.micro_batch or batch_size
    if batch_size % micro:
        raise ParamsError(f"params.yaml: runtime.micro_batch {micro} does not divide the recipe batch size "
                          f"{batch_size}")
    return micro, batch_size // micro

def apply_memory_cap(profile: Profile, device: torch.device) -> None:
    if device.type == "cuda" and profile.max_vram_pct < 1.0:
        torch.cuda.set_per_process_memory_fraction(profile.max_vram_pct, device)

def prepare_model(model, profile: Profile) -> None:
    apply_memory_cap(profile, model.device)
    if profile.grad_ckpt and hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    elif profile.grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

def sdpa_backends(setting: str, capability: tuple[int, int] | None) -> list | None:
    """The SDPA kernels to allow (None: PyTorch's dispatch, never flash below sm80); capability None = no CUDA."""
    from torch.nn.attention import SDPBackend
    if setting == "auto" or capability is None:
        return None
    return ([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH] if setting == "mem_efficient" and capability >= (5, 0)
            else [SDPBackend.MATH])

def device_capability(device: torch.device) -> tuple[int, int] | None:
    return torch.cuda.get_device_capability(device) if device.type == "cuda" else None

def make_optimizer(model, profile: Profile, lr: float, betas, weight_decay: float, mask_id: int):
    if hasattr(model, "peft_config"):
        return optimizer_class(profile)([p for p in model.parameters() if p.requires_grad], lr=lr, betas=betas,
                                        weight_decay=weight_decay)
    embedding = model.get_input_embeddings().weight
    if profile.train_embeddings == "mask_row":
        keep = torch.zeros(embedding.shape[0], 1, device=embedding.device, dtype=embedding.dtype)
        keep[mask_id] = 1
        embedding.register_hook(lambda grad: grad * keep)
    others = [p for p in model.parameters() if p is not embedding and p.requires_grad]
    groups = [{"params": others, "weight_decay": weight_decay},
              {"params": [embedding], "weight_decay": 0.0 if profile.train_embeddings == "mask_row" else weight_decay}]
    return optimizer_class(profile)(groups, lr=lr, betas=betas)

def optimizer_class(profile: Profile):
    if profile.optimizer != "adamw8bit":
        return torch.optim.AdamW
    try:
        import bitsandbytes
    except ImportError:
        raise ParamsError("runtime.optimizer: adamw8bit needs bitsandbytes (pip install 'hildanext[lowmem]')") from None
    return bitsandbytes.optim.AdamW8bit

@contextlib.contextmanager
def compute_context(profile: Profile, device: torch.device):
    with contextlib.ExitStack() as stack:
        if profile.autocast != "none":
            stack.enter_context(torch.autocast(device.type, dtype=AUTOCAST[profile.autocast]))
        if (backends := sdpa_backends(profile.sdpa_backend, device_capability(device))) is not None:
            stack.enter_context(torch.nn.attention.sdpa_kernel(backends))
        yield

def make_scaler(profile: Profile, device: torch.device):
    """A GradScaler for fp16 autocast (fp16 gradients underflow without loss scaling), else None."""
    return torch.amp.GradScaler(device.type) if profile.autocast == "fp16" else None
