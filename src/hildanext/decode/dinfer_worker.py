# The worker of hildanext's dInfer engine, run by path inside the separate dInfer environment (inclusionAI/dInfer
# @fce4e32, vLLM 0.10.2, transformers 4.57); it imports only stdlib, torch, transformers and (lazily) dinfer.
# Qwen3DInfer presents our exported Qwen3 dLLM in the forward convention dInfer's BlockDiffusionLLM calls, and
# Runner drives BlockDiffusionLLM + ThresholdParallelDecoder + the block-diffusion prefix KV cache.
# Entry points: hello(), Qwen3DInfer, StepCache, PassRecorder, load_config, Runner, handle(message, state), main().
import importlib, inspect, json, os, platform, sys, time
from types import SimpleNamespace
import torch
import transformers
PROTOCOL = 1
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
def module_version(name: str) -> tuple[str | None, str | None]:
    try:
        return getattr(importlib.import_module(name), "__version__", "unknown"), None
    except Exception as e:
        return None, f"{e.__class__.__name__}: {e}"

def hello() -> dict:
    """Versions and the CUDA device, so the caller can run its capability checks."""
    info = {"op": "hello", "protocol": PROTOCOL, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__}
    info |= {"cuda": torch.cuda.is_available(), "capability": None, "device": None, "errors": {}}
    if info["cuda"]:
        info["capability"], info["device"] = list(torch.cuda.get_device_capability()), torch.cuda.get_device_name()
    for name in ("vllm", "dinfer"):
        info[name], error = module_version(name)
        info["errors"] |= {name: error} if error else {}
    return info

class StepCache:
    """The cache object Hugging Face attention layers call: each layer's K/V go through dInfer's KVCache.update."""
    is_compileable = False
    def __init__(self, target=None, replace_position=None):
        self.target, self.replace_position, self.layers = target, replace_position, {}
    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        if self.target is not None:
            key_states, value_states = self.target.update(key_states, value_states, layer_idx, self.replace_position)
        self.layers[layer_idx] = (key_states, value_states)
        return key_states, value_states
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0 if self.target is None else int(self.replace_position[0])
    def flat(self) -> list:
        return [t for i in sorted(self.layers) for t in self.layers[i]]

class Qwen3DInfer(torch.nn.Module):
    """Our Qwen3 dLLM behind dInfer's model call (ids, attention_mask | past_key_values, replace_position)."""
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self.banned = torch.zeros(0, dtype=torch.long, device=self.device)
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device
    def ban(self, ids) -> None:
        banned = sorted({int(i) for i in ids if int(i) < self.model.config.vocab_size})
        self.banned = torch.tensor(banned, dtype=torch.long, device=self.device)
    def mask(self, attention_mask, query_len: int, key_len: int, batch: int) -> torch.Tensor:
        """dInfer's [B, q, k] 0/1 block mask (None = attend to all keys) as our 4D mask: bool, or additive for eager."""
        if attention_mask is None:
            allowed = torch.ones(batch, query_len, key_len, dtype=torch.bool, device=self.device)
        else:
            allowed = attention_mask.to(self.device).bool()
        allowed = allowed[:, None] if allowed.dim() == 3 else allowed
        if self.model.config._attn_implementation != "eager":
            return allowed
        dtype = self.model.dtype
        return torch.zeros(allowed.shape, dtype=dtype, device=self.device).masked_fill(~allowed, torch.finfo(dtype).min)
    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False,
                replace_position=None, **kwargs):
        batch, query_len = input_ids.shape
        start = int(replace_position[0]) if past_key_values is not None else 0
        key_len = int(past_key_values.seq_len) if past_key_values is not None else query_len
        if position_ids is None:
            position_ids = torch.arange(start, start + query_len, device=self.device)[None].expand(batch, -1)
        cache = StepCache(past_key_values, replace_position)
        mask = self.mask(attention_mask, query_len, key_len, batch)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False,
                         **{self.cache_arg: cache})
        logits = out.logits.index_fill(-1, self.banned, -float("inf")) if len(self.banned) else out.logits
        return SimpleNamespace(logits=logits, past_key_values=cache.flat() if use_cache else None)

class PassRecorder:
    """Wraps dInfer's decoder: delegates everything, keeps the token array and one record per decoding pass."""
    def __init__(self, decoder, prompt_len: int, block_size: int):
        self.__dict__.update(decoder=decoder, prompt_len=prompt_len, block_size=block_size, passes=[], x=None)
    def __getattr__(self, name):
        return getattr(self.__dict__["decoder"], name)
    def decode(self, logits, block_start, block_end, x, *args, **kwargs):
        before = x[:, block_start:block_end][0].clone()
        self.decoder.decode(logits, block_start, block_end, x, *args, **kwargs)
        self.x, after = x, x[:, block_start:block_end][0]
        block = int(block_start) // self.block_size
        step = sum(1 for record in self.passes if record[0] == block)
        offset = int(block_start) - self.prompt_len
        unmasked = [[int(i) + offset, int(after[i])] for i in (before != after).nonzero().flatten()]
        self.passes.append([block, step, int((after == self.decoder.mask_id).sum()), unmasked])

def load_config(model_dir: str):
    """The folder's config; a transformers 5 save keeps RoPE in rope_parameters, which 4.x would silently ignore."""
    config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
    rope = getattr(config, "rope_parameters", None)
    if isinstance(rope, dict) and "rope_theta" in rope and int(transformers.__version__.split(".")[0]) < 5:
        config.rope_theta = rope["rope_theta"]
        scaling = {key: value for key, value in rope.items() if key != "rope_theta"}
        config.rope_scaling = scaling if scaling.get("rope_type", "default") != "default" else None
    return config

class Runner:
    """Our model in dInfer's BlockDiffusionLLM; generate(request) answers one protocol generate message."""
    def __init__(self, model_dir: str, dtype: str = "bfloat16", device: str = "cuda",
                 attn_implementation: str = "sdpa"):
        config = load_config(model_dir)
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, config=config, local_files_only=True,
                                                                  dtype=DTYPES[dtype],
                                                                  attn_implementation=attn_implementation)
        self.model = Qwen3DInfer(model.to(device).eval())
    def engine(self, request: dict, decoder, notes: list):
        from dinfer import BlockDiffusionLLM, BlockIteratorFactory, KVCacheFactory
        prompt, size = request["prompt_ids"], request["block_size"]
        early_stop = bool(request.get("early_stop", True))
        if early_stop and request["eos_id"] in prompt[len(prompt) // size * size:]:
            notes.append("the prompt's last partial block holds eos (dInfer would stop after it): early stop off")
            early_stop = False
        blocks = BlockIteratorFactory(start_block_align=True, use_block_diffusion=True)
        return BlockDiffusionLLM(self.model, decoder, blocks, KVCacheFactory("prefix", is_bd_model=True),
                                 early_stop=early_stop)
    def generate(self, request: dict) -> dict:
        from dinfer import ThresholdParallelDecoder
        prompt, size, notes = request["prompt_ids"], request["block_size"], []
        self.model.ban({request["mask_id"], *request.get("suppress_ids", ())})
        threshold = ThresholdParallelDecoder(temperature=request["temperature"], threshold=request["threshold"],
                                             mask_id=request["mask_id"], eos_id=request["eos_id"])
        decoder = PassRecorder(threshold, len(prompt), size)
        llm = self.engine(request, decoder, notes)
        torch.manual_seed(request.get("seed", 0))
        started = time.perf_counter()
        prompt_ids = torch.tensor([prompt], dtype=torch.long, device=self.model.device)
        llm.generate(prompt_ids, gen_length=request["max_new_tokens"], block_length=size)
        if self.model.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        ids = decoder.x[:, len(prompt) : len(prompt) + request["max_new_tokens"]][0].tolist()
        counts = {"forwards": int(llm.num_forwards), "passes": len(decoder.passes), "seconds": seconds}
        return {"id": request.get("id"), "ids": ids, **counts, "trace": decoder.passes, "notes": notes}

def handle(message: dict, state: dict) -> dict:
    """One protocol message -> its reply; errors become {"error": ...} and the worker keeps running."""
    op = message.get("op")
    try:
        if op == "hello":
            return hello()
        if op == "load":
            started = time.perf_counter()
            defaults = {"dtype": "bfloat16", "device": "cuda", "attn_implementation": "sdpa"}
            state["runner"] = Runner(message["model_dir"], **{k: message.get(k, v) for k, v in defaults.items()})
            seconds = time.perf_counter() - started
            return {"op": "load", "ok": True, "device": str(state["runner"].model.device), "seconds": seconds}
        if op == "generate":
            if "runner" not in state:
                raise RuntimeError("generate before load")
            return {"op": "generate"} | state["runner"].generate(message)
        if op == "quit":
            return {"op": "quit"}
        raise ValueError(f"unknown op {op!r}")
    except Exception as e:
        return {"op": op, "id": message.get("id"), "error": f"{e.__class__.__name__}: {e}"}

def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # our dinfer.py would shadow dInfer (above); library prints must not reach the protocol
    state: dict = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError as e:
            message = {"op": None, "bad": str(e)}
        reply = handle(message, state) if "bad" not in message else {"op": None, "error": f"bad JSON: {message['bad']}"}
        replies.write(json.dumps(reply) + "\n")
        if message.get("op") == "quit":
            break

if __name__ == "__main__":
    main()
