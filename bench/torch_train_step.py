#!/usr/bin/env python3
# PyTorch side of bench_train_step: the models of bench/bench_models.h built with transformers' own
# classes — LlamaForCausalLM (`base` preset: V=8192 D=512 L=8 H=KV=8 S=64 F=1408, untied) and its
# Mixtral upcycle (MixtralForCausalLM, every FFN copied into 8 experts, router N(0, 0.02²), top-2
# renormalised, no jitter, no aux loss) — random init, seeded, CPU, `--threads` threads. One training
# step = forward with labels (HF's shifted cross-entropy), backward, clip_grad_norm_(1.0),
# torch.optim.AdamW step, zero_grad: what bench_train_step times on upcycle's side. Timed in fp32 and
# under torch.autocast("cpu", bfloat16); `--warmup` steps, then the median of `--iters` steps.
# Prints "torch_case name=… ms_per_step=… tokens_per_s=…" per case, one "torch_train_step …" summary
# (read by bench_train_step --torch=FILE) and a kernel report: threadpoolctl, torch's build (MKL,
# oneDNN), and per case one step under MKL_VERBOSE / ONEDNN_VERBOSE, counted by kernel (kernel_report.py).
import argparse
import statistics
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

import kernel_report

CASES = ("dense", "moe", "dense_bf16", "moe_bf16")


def llama_config(a):
    # upcycle's `base` Llama preset (src/io/model_presets.cpp, eps/theta from its llama defaults).
    return dict(vocab_size=8192, hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                num_attention_heads=8, num_key_value_heads=8, head_dim=64, max_position_embeddings=4096,
                rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                tie_word_embeddings=False, hidden_act="silu", initializer_range=0.02, attention_dropout=0.0,
                use_cache=False, attn_implementation=a.attn)


def build(a, moe):
    """Dense: LlamaForCausalLM with HF's random init (N(0, 0.02²) matrices, norms 1), seed 0. MoE: the
    same dense model upcycled into MixtralForCausalLM, as bench_train_step.cpp's fill_upcycled does."""
    torch.manual_seed(0)
    dense = LlamaForCausalLM(LlamaConfig(**llama_config(a)))
    if not moe:
        return dense
    cfg = MixtralConfig(**llama_config(a), num_local_experts=8, num_experts_per_tok=2, router_jitter_noise=0.0,
                        output_router_logits=False, sliding_window=None, experts_implementation=a.experts)
    model = MixtralForCausalLM(cfg)
    src = dense.state_dict()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in src:  # embeddings, attention, norms, lm_head
                p.copy_(src[name])
            elif name.endswith("mlp.experts.gate_up_proj"):  # [E, 2F, D] = [gate; up] per expert
                mlp = name.removesuffix("experts.gate_up_proj")
                p.copy_(torch.cat((src[mlp + "gate_proj.weight"], src[mlp + "up_proj.weight"])).expand_as(p))
            elif name.endswith("mlp.experts.down_proj"):  # [E, D, F]
                p.copy_(src[name.removesuffix("experts.down_proj") + "down_proj.weight"].expand_as(p))
            elif name.endswith("mlp.gate.weight"):  # router
                p.normal_(0.0, 0.02)
            else:
                raise RuntimeError(f"no dense source for {name}")
    return model


def optimizer(model):
    # upcycle's AdamW (src/train/adamw.h, trainer defaults): β = (0.9, 0.95), ε 1e-8, weight decay 0.1
    # on matrices and embeddings, none on norms. torch picks its default implementation (see report).
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                             lr=3e-4, betas=(0.9, 0.95), eps=1e-8)


def adamw_implementation(model):
    """What torch.optim.AdamW's foreach=None/fused=None resolve to for these CPU tensors."""
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach  # private; moves between releases
        fused, foreach = _default_to_fused_or_foreach(list(model.parameters()), False, False)
        return "fused" if fused else "foreach" if foreach else "single-tensor (for-loop)"
    except (ImportError, TypeError):
        return "default (implementation unknown)"


def make_step(a, model, bf16):
    opt = optimizer(model)
    model.train()
    gen = torch.Generator().manual_seed(11)
    ids = torch.randint(0, 8192, (a.batch, a.seq), generator=gen)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss  # HF shifts labels: T−1 targets per sequence
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step, opt


def run_case(a, name):
    moe, bf16 = name.startswith("moe"), name.endswith("bf16")
    model = build(a, moe)
    step, opt = make_step(a, model, bf16)
    loss = step()  # the loss at init
    for _ in range(a.warmup - 1):
        step()
    ms = []
    for _ in range(a.iters):
        start = time.perf_counter()
        step()
        ms.append((time.perf_counter() - start) * 1e3)
    med = statistics.median(ms)
    print(f"torch_case name={name} ms_per_step={med:.1f} tokens_per_s={a.batch * a.seq / med * 1e3:.1f} "
          f"loss_at_init={loss:.6f} steps_ms={','.join(f'{m:.0f}' for m in ms)}", flush=True)
    if a.kernels:
        kernel_report.profile_step(name, step)
    return model, opt, a.batch * a.seq / med * 1e3


def main():
    p = argparse.ArgumentParser(description="PyTorch (transformers) side of bench_train_step")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (≥ 1; the first gives the loss)")
    p.add_argument("--iters", type=int, default=5, help="timed steps; the median is reported")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--attn", default="sdpa", choices=("sdpa", "eager"),
                   help="transformers attn_implementation (sdpa: transformers' default, fused causal kernel)")
    p.add_argument("--experts", default=None, choices=("eager", "grouped_mm", "batched_mm"),
                   help="transformers experts_implementation (default: transformers' choice, grouped_mm where "
                        "this torch has it, else the eager per-expert loop)")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    p.add_argument("--no-kernels", dest="kernels", action="store_false",
                   help="skip the one verbose step per case that counts MKL / oneDNN kernels")
    a = p.parse_args()
    cases = a.cases.split(",")
    if set(cases) - set(CASES) or a.warmup < 1 or a.iters < 1:
        p.error(f"--cases must be a subset of {CASES}; --warmup and --iters ≥ 1")
    torch.set_num_threads(a.threads)
    kernel_report.print_environment(a.threads)
    measured = {}
    for c in cases:
        model, opt, measured[c] = run_case(a, c)
        print(f"# {c}: attn_implementation={model.config._attn_implementation} "
              f"experts_implementation={getattr(model.config, '_experts_implementation', None) if 'moe' in c else '-'} "
              f"AdamW {adamw_implementation(model)}", flush=True)
    print(f"torch_train_step torch={torch.__version__} transformers={transformers.__version__} threads={a.threads} "
          f"batch={a.batch} seq={a.seq} warmup={a.warmup} iters={a.iters} attn={a.attn} experts={a.experts or 'default'} "
          + " ".join(f"{c}_tokens_per_s={v:.1f}" for c, v in measured.items()), flush=True)


if __name__ == "__main__":
    main()
