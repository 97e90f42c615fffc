"""Checkpoints made by transformers itself, for tests/interop/test_upcycle_reads_hf.py.

Each Variant is one family's config, built with transformers' own config class, initialised from a
seed by `AutoModelForCausalLM.from_config` and written by `save_pretrained(safe_serialization=True)`:
single file or sharded (a small max_shard_size, so several shards and an index), tied or untied
embeddings, float32 or bfloat16. The init is widened (initializer_range, plus noise on norm weights
and biases, which transformers initialises to 1 and 0) so that a misplaced norm, bias or expert moves
the logits far above the test's tolerance instead of hiding in nearly flat logits.
"""
import dataclasses

import torch
import transformers

import hf_judge

VOCAB = 320
# Shared shape: D 64, 4 heads of 16 (2 kv heads), 3 layers; MoE: 4 experts, top-2.
BASE = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, initializer_range=0.15,
            max_position_embeddings=256)
WINDOW = 16  # sliding window below the test's 64 tokens, so the window changes the logits


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    family: str
    extra: dict  # family-specific config keys on top of BASE
    sharded: bool = False
    tied: bool = False
    dtype: torch.dtype = torch.float32

    @property
    def dense(self):
        return self.family in ("llama", "mistral", "qwen2", "qwen3")

    def config(self):
        cls = transformers.CONFIG_MAPPING[self.family]
        return cls(**BASE, **self.extra, tie_word_embeddings=self.tied)


# Every family at least once; across the list each of sharded/single, tied/untied, f32/bf16 occurs
# for dense and MoE families alike.
VARIANTS = [
    Variant("llama-bias", "llama", dict(attention_bias=True)),
    Variant("llama-llama3rope-bf16-sharded-tied", "llama",
            dict(rope_parameters=dict(rope_type="llama3", rope_theta=50000.0, factor=8.0, low_freq_factor=1.0,
                                      high_freq_factor=4.0, original_max_position_embeddings=32)),
            sharded=True, tied=True, dtype=torch.bfloat16),
    Variant("mistral-window-sharded", "mistral", dict(sliding_window=WINDOW), sharded=True),
    Variant("qwen2-window-bf16-tied", "qwen2",
            dict(use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1), tied=True,
            dtype=torch.bfloat16),
    Variant("qwen3-headdim-bias-window-sharded", "qwen3",  # max_window_layers 0: every layer windowed
            dict(head_dim=32, attention_bias=True, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=0),
            sharded=True),
    Variant("mixtral-window-bf16-sharded", "mixtral",
            dict(num_local_experts=4, num_experts_per_tok=2, sliding_window=WINDOW), sharded=True,
            dtype=torch.bfloat16),
    Variant("qwen2_moe-shared", "qwen2_moe",
            dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48,
                 shared_expert_intermediate_size=80, mlp_only_layers=[1])),
    Variant("qwen2_moe-window-sharded-tied", "qwen2_moe",
            dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48,
                 shared_expert_intermediate_size=80, norm_topk_prob=True, use_sliding_window=True,
                 sliding_window=WINDOW, max_window_layers=2), sharded=True, tied=True),
    Variant("qwen3_moe-bias-bf16-tied", "qwen3_moe",
            dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48, norm_topk_prob=True,
                 attention_bias=True, decoder_sparse_step=2), tied=True, dtype=torch.bfloat16),
    Variant("qwen3_moe-window-sharded", "qwen3_moe",
            dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48, mlp_only_layers=[0],
                 use_sliding_window=True, sliding_window=WINDOW), sharded=True),
]


@torch.no_grad()
def save_variant(variant, directory, seed):
    """Builds the variant's model from `seed` and saves it; returns the in-memory model (its dtype)."""
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(variant.config(), dtype=variant.dtype)
    for name, p in model.named_parameters():
        if p.dim() == 1:  # norm weights (init 1) and biases (init 0): make every one distinct
            p.add_(torch.randn_like(p) * (0.3 if name.endswith("bias") else 0.2))
    model.save_pretrained(directory, safe_serialization=True,
                          max_shard_size="40KB" if variant.sharded else "50GB")
    return model


