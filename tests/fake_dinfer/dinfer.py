# A stand-in for inclusionAI/dInfer@fce4e32 (Apache-2.0), which cannot run here: `import dinfer` needs vLLM and
# vLLM needs CUDA. Same public signatures; the code paths BlockDiffusionLLM takes with ThresholdParallelDecoder
# and the block-diffusion prefix cache (backend 'vllm', batch 1) are transcribed from python/dinfer/decoding/
# generate_uniform.py, utils.py and parallel_strategy.py, without vLLM and torch.compile. CALLS records the
# constructor calls. Entry points: the names dinfer/__init__.py exports that hildanext's worker uses.
import math
import torch
import torch.nn.functional as F
__version__ = "0.1"
CALLS: list = []
def add_gumbel_noise(logits, temperature):
    if math.isclose(temperature, 0.0):
        return logits
    logits = logits.to(torch.float64)
    noise = torch.rand_like(logits, dtype=torch.float64)
    return logits.exp() / (-torch.log(noise)) ** temperature

class TokenArray:
    def __init__(self, prompt, gen_length, mask_id, eos_id, device):
        self.prompt = prompt.to(device)
        self.data = torch.full((prompt.shape[0], prompt.shape[1] + gen_length), mask_id, dtype=torch.long).to(device)
        self.data[:, : prompt.shape[1]] = prompt.clone()
        self.gen_length, self.eos_id, self.mask_id = gen_length, eos_id, mask_id
    @property
    def total_length(self):
        return self.prompt.shape[1] + self.gen_length
    def get_generated_tokens(self):
        return self.data[self.data != self.eos_id].unsqueeze(0)
    def __getitem__(self, idx):
        return self.data[idx]
    def __setitem__(self, idx, vals):
        self.data[idx] = vals

class BlockLoc:
    def __init__(self, start, end):
        self.start, self.end = start, end

class BlockDiffusionIterator:
    def __init__(self, x, block_length):
        self.x, self.iter, self.block_length = x, 0, block_length
        self.first_block_start = self._get_first_block_start()
    def _get_first_block_start(self):
        non_mask_number = (self.x.prompt != self.x.mask_id).sum(dim=-1).min().item()
        return non_mask_number // self.block_length * self.block_length
    def __iter__(self):
        self.iter = 0
        return self
    def __next__(self):
        start = self.first_block_start + self.iter * self.block_length
        if start >= self.x.total_length:
            raise StopIteration
        end = min(start + self.block_length, self.x.total_length)
        self.iter += 1
        return BlockLoc(start, end), self.x[start:end]

class BlockIteratorFactory:
    def __init__(self, start_block_align=False, use_block_diffusion=False):
        CALLS.append(("BlockIteratorFactory",
                      {"start_block_align": start_block_align, "use_block_diffusion": use_block_diffusion}))
        self._use_bd = use_block_diffusion
    def create(self, x, block_length):
        if not self._use_bd:
            raise NotImplementedError("the fake transcribes only the block-diffusion iterator")
        return BlockDiffusionIterator(x, block_length)

class KVCache:
    def __init__(self, past_key_values, backend="vllm", length=2048, cache_align_size=256):
        assert backend == "vllm" and len(past_key_values) % 2 == 0
        self._data = past_key_values
    def consolidate(self):
        if not isinstance(self._data, torch.Tensor):
            self._data = torch.stack(self._data, dim=0).reshape(len(self._data) // 2, 2, *self._data[0].shape)
    @property
    def seq_len(self):
        return self._data.shape[4]
    def update(self, key_states, val_states, layer_idx, replace_position=None, backend="vllm"):
        keys, values = self._data[layer_idx][0], self._data[layer_idx][1]
        if replace_position is not None:
            start, end = replace_position
            keys = keys.slice_scatter(key_states, dim=2, start=start, end=end)
            return keys, values.slice_scatter(val_states, dim=2, start=start, end=end)
        return torch.cat([keys, key_states], dim=2), torch.cat([values, val_states], dim=2)

class BlockDiffusionPrefixCacheManager:
    def __init__(self, cache_update_freq=None, cache_type="prefix", backend="vllm", max_length=2048):
        self.past_key_values, self.cache_type, self.backend = None, cache_type, backend
    def update(self, past_key_values, range_start=None, range_end=None):
        if not isinstance(past_key_values, KVCache):
            past_key_values = KVCache(past_key_values, self.backend)
        self.past_key_values = past_key_values
        self.past_key_values.consolidate()
    def get_key_values(self, block_start, block_end):
        return self.past_key_values, (int(block_start), int(block_end))
    def extend_cache(self, end):
        cur_kv_length = self.past_key_values._data.shape[-2]
        self.past_key_values._data = F.pad(self.past_key_values._data, pad=(0, 0, 0, end - cur_kv_length),
                                           mode="constant", value=0)

class KVCacheFactory:
    def __init__(self, cache_type, cache_update_freq=None, is_bd_model=False, backend="vllm", max_length=2048):
        CALLS.append(("KVCacheFactory",
                      {"cache_type": cache_type, "cache_update_freq": cache_update_freq, "is_bd_model": is_bd_model,
                       "backend": backend}))
        self.cache_type, self.cache_update_freq, self.is_bd_model = cache_type, cache_update_freq, is_bd_model
        self.backend, self.max_length = backend, max_length
    def create(self):
        if not self.is_bd_model or self.backend != "vllm":
            raise NotImplementedError("the fake transcribes only the block-diffusion prefix cache on the vllm backend")
        return BlockDiffusionPrefixCacheManager(self.cache_update_freq, self.cache_type, self.backend, self.max_length)

def get_transfer_index_threshold(logits, temperature, mask_index, x, mask_id, threshold, rm_mask=True,
                                 use_float64=False, **kwargs):
    x0 = torch.argmax(add_gumbel_noise(logits, temperature=temperature), dim=-1)
    p = F.softmax(logits.to(torch.float64 if use_float64 else torch.float32), dim=-1)
    x0_p = torch.gather(p, dim=-1, index=x0.unsqueeze(-1)).squeeze(-1)
    if rm_mask:
        mask_index = mask_index & (x0 != mask_id)
    x0 = torch.where(mask_index, x0, x)
    confidence = torch.where(mask_index, x0_p, -math.inf)
    actual_threshold = (torch.max(confidence, dim=1)[0] - 1e-5).clamp(-1000, threshold).unsqueeze(-1)
    return x0, confidence >= actual_threshold

class ThresholdParallelDecoder:
    def __init__(self, temperature, threshold, remasking="low_confidence", mask_id=126336, eos_id=126081,
                 use_float64=False):
        CALLS.append(("ThresholdParallelDecoder",
                      {"temperature": temperature, "threshold": threshold, "remasking": remasking, "mask_id": mask_id,
                       "eos_id": eos_id}))
        self.temperature, self.threshold, self.remasking = temperature, threshold, remasking
        self.mask_id, self.eos_id, self.use_float64 = mask_id, eos_id, use_float64
    def block_init(self, block_x, block_id):
        pass
    def decode(self, logits, block_start, block_end, x, iter_threshold=None):
        iter_threshold = self.threshold if iter_threshold is None else iter_threshold
        mask_index = x[:, block_start:block_end] == self.mask_id
        assert mask_index.shape[1] == logits.shape[1]
        curr_x = x[:, block_start:block_end]
        x0, transfer_index = get_transfer_index_threshold(logits, self.temperature, mask_index, curr_x, self.mask_id,
                                                          threshold=iter_threshold, use_float64=self.use_float64)
        x[:, block_start:block_end] = torch.where(transfer_index & mask_index, x0, curr_x)

class BlockDiffusionLLM:
    def __init__(self, model, decoder, iterator_factory, cache_factory, early_stop=True, maximum_unroll=4,
                 expected_tpf=8, backend="vllm"):
        CALLS.append(("BlockDiffusionLLM",
                      {"model": model, "decoder": decoder, "iterator_factory": iterator_factory,
                       "cache_factory": cache_factory, "early_stop": early_stop, "backend": backend}))
        self.model, self.decoder, self.iterator_factory = model, decoder, iterator_factory
        self.cache_factory, self.early_stop, self.maximum_unroll = cache_factory, early_stop, maximum_unroll
        self.expected_tpf, self.num_forwards = expected_tpf, 0
    def prefill(self, block, kv_cache, pos_ids, attn_mask):
        output = self.model(block.clone(memory_format=torch.contiguous_format), use_cache=True,
                            attention_mask=attn_mask, position_ids=pos_ids.clone(memory_format=torch.contiguous_format))
        kv_cache.update(output.past_key_values)
        self.num_forwards += 1
    def step(self, block, pos_ids, past_key_values, replace_position):
        self.num_forwards += 1
        return self.model(block.clone(memory_format=torch.contiguous_format),
                          position_ids=pos_ids.clone(memory_format=torch.contiguous_format), use_cache=True,
                          past_key_values=past_key_values, replace_position=replace_position)
    def decode(self, x, kv_cache, block_loc, pos_ids):
        start, end, mask_id = block_loc.start, block_loc.end, self.decoder.mask_id
        block = x[:, start:end]
        kv_cache.extend_cache(end)
        past_key_values, replace_position = kv_cache.get_key_values(start, end)
        input_block_mask_number = 0
        while (block == mask_id).sum() > 0:
            for _ in range(int(max(min((block == mask_id).sum() // self.expected_tpf, self.maximum_unroll), 2))):
                input_block_mask_number = (block == mask_id).sum()
                output = self.step(block, pos_ids[:, start:end], past_key_values, replace_position)
                kv_cache.update(output.past_key_values)
                self.decoder.decode(output.logits, start, end, x)
        if input_block_mask_number > 0:
            output = self.step(block, pos_ids[:, start:end], past_key_values, replace_position)
        kv_cache.update(output.past_key_values)
        eos_idx = torch.any(x[:, start:end] == self.decoder.eos_id, dim=1)
        if self.early_stop:
            x[eos_idx, end:] = self.decoder.eos_id
        return eos_idx
    @torch.no_grad()
    def generate(self, prompt, gen_length=128, block_length=128):
        batch_size, prompt_length = prompt.shape
        num_blocks = (prompt_length + gen_length + block_length - 1) // block_length
        total_length, device = num_blocks * block_length, self.model.device
        block_mask = torch.tril(torch.ones(num_blocks, num_blocks, device=device))
        bd_attn_mask = block_mask.repeat_interleave(block_length, dim=0).repeat_interleave(block_length, dim=1)
        bd_attn_mask = bd_attn_mask.unsqueeze(0).repeat(batch_size, 1, 1)
        pos_ids = torch.arange(total_length, device=device).unsqueeze(0).repeat(batch_size, 1)
        x = TokenArray(prompt, total_length - prompt_length, self.decoder.mask_id, self.decoder.eos_id, device)
        it = self.iterator_factory.create(x, block_length)
        kv_cache = self.cache_factory.create()
        prefill_length = max(it._get_first_block_start() // block_length * block_length, block_length)
        self.prefill(x[:, :prefill_length], kv_cache, pos_ids[:, :prefill_length],
                     bd_attn_mask[:, :prefill_length, :prefill_length])
        for block_id, (block_loc, block) in enumerate(it):
            self.decoder.block_init(block, block_id)
            if torch.all(self.decode(x, kv_cache, block_loc, pos_ids)) and self.early_stop:
                break
        print(f"fake dInfer: {self.num_forwards} forwards")
        return x.get_generated_tokens()
