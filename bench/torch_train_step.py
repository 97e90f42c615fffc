#!/usr/bin/env python3
# PyTorch side of bench_train_step: the same `base` model (V=8192 D=512 L=8 H=KV=8 F=1408, fp32,
# CPU, 2 threads) written the way HF transformers' eager Llama/Mixtral code runs it — RMSNorm,
# RoPE with rotate_half, explicit causal attention (torch 1.13 has no SDPA), SwiGLU, and for the
# MoE the per-expert loop (softmax router, top-2, renormalise, index_select/index_add per expert).
# One training step = zero_grad + forward + cross-entropy + backward, no optimizer, as in C++.
# Measured twice: plain fp32 (the comparison the goals use), then under torch.autocast("cpu",
# bfloat16) — PyTorch's own bf16 mixed precision (fp32 master weights, matmuls in bf16 via oneDNN) —
# for an honest comparison with upcycle's cpu-bf16 backend. Prints one machine-readable line,
# "torch_train_step ... dense_tokens_per_s=X moe_tokens_per_s=Y dense_bf16_tokens_per_s=…
# moe_bf16_tokens_per_s=…", that scripts/bench hands to bench_train_step for the ratios.
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, d = x.shape
        shape = (b, t, self.heads, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim) + mask
        probs = F.softmax(scores, dim=-1)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, d)
        return self.o_proj(out)


class Mlp(nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class SparseMoe(nn.Module):
    """Mixtral-style block as HF runs it eagerly: loop over experts, gather their tokens, scatter-add."""

    def __init__(self, d, f, experts, top_k):
        super().__init__()
        self.top_k, self.num_experts = top_k, experts
        self.gate = nn.Linear(d, experts, bias=False)
        self.experts = nn.ModuleList(Mlp(d, f) for _ in range(experts))

    def forward(self, x):
        b, t, d = x.shape
        x = x.view(-1, d)
        probs = F.softmax(self.gate(x), dim=1, dtype=torch.float)
        weights, chosen = torch.topk(probs, self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(x)
        expert_mask = F.one_hot(chosen, num_classes=self.num_experts).permute(2, 1, 0)  # [E, k, tokens]
        for e, expert in enumerate(self.experts):
            slot, rows = torch.where(expert_mask[e])
            if rows.numel() == 0:
                continue
            y = expert(x.index_select(0, rows)) * weights[rows, slot, None]
            out.index_add_(0, rows, y)
        return out.view(b, t, d)


class Layer(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.input_layernorm = RMSNorm(a.hidden, a.eps)
        self.self_attn = Attention(a.hidden, a.heads)
        self.post_attention_layernorm = RMSNorm(a.hidden, a.eps)
        self.mlp = SparseMoe(a.hidden, a.ffn, a.experts, a.top_k) if a.moe else Mlp(a.hidden, a.ffn)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Model(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.hidden)
        self.layers = nn.ModuleList(Layer(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.hidden, a.eps)
        self.lm_head = nn.Linear(a.hidden, a.vocab, bias=False)
        head_dim = a.hidden // a.heads
        inv_freq = 1.0 / (a.theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        angles = torch.outer(torch.arange(a.seq, dtype=torch.float), inv_freq)
        emb = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", emb.cos())
        self.register_buffer("sin", emb.sin())
        self.register_buffer("mask", torch.full((a.seq, a.seq), float("-inf")).triu(1))
        for name, p in self.named_parameters():
            if p.dim() == 2:  # norms stay at 1; matrices ~ N(0, 0.02²) like the C++ side
                nn.init.normal_(p, std=0.02)

    def forward(self, ids):
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        return self.lm_head(self.norm(x))


def tokens_per_s(a, moe, bf16):
    a.moe = moe
    torch.manual_seed(0)
    model = Model(a)
    if moe:  # upcycle: every expert starts as a copy of one FFN (router stays random)
        with torch.no_grad():
            for layer in model.layers:
                for e in layer.mlp.experts[1:]:
                    e.load_state_dict(layer.mlp.experts[0].state_dict())
    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    targets = torch.cat((ids[:, 1:], torch.full((a.batch, 1), -1)), dim=1)

    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(ids)
            loss = F.cross_entropy(logits.view(-1, a.vocab), targets.reshape(-1), ignore_index=-1)
        loss.backward()
        return loss.item()

    loss = step()  # warm-up
    start = time.perf_counter()
    for _ in range(a.iters):
        step()
    seconds = (time.perf_counter() - start) / a.iters
    name = ("moe" if moe else "dense") + (" bf16 autocast" if bf16 else "")
    print(f"# {name}: {seconds * 1e3:.0f} ms/step, first loss {loss:.4f}", flush=True)
    return a.batch * a.seq / seconds


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cases", default="dense,moe,dense_bf16,moe_bf16",
                   help="comma-separated subset to time (scripts/bench train-paired times moe alone)")
    a = p.parse_args()
    cases = a.cases.split(",")
    unknown = set(cases) - {"dense", "moe", "dense_bf16", "moe_bf16"}
    if unknown:
        p.error(f"unknown --cases {sorted(unknown)}")
    # The `base` preset (src/io/model_presets.cpp) with Llama defaults (eps 1e-6 as upcycle's llama
    # default config, rope theta 1e4); MoE: 8 experts of the same width, top-2.
    a.vocab, a.hidden, a.layers, a.heads, a.ffn = 8192, 512, 8, 8, 1408
    a.experts, a.top_k, a.eps, a.theta = 8, 2, 1e-6, 10000.0
    torch.set_num_threads(a.threads)
    measured = {c: tokens_per_s(a, c.startswith("moe"), c.endswith("bf16")) for c in cases}
    print(f"torch_train_step torch={torch.__version__} threads={a.threads} batch={a.batch} seq={a.seq} "
          + " ".join(f"{c}_tokens_per_s={v:.1f}" for c, v in measured.items()), flush=True)


if __name__ == "__main__":
    main()
