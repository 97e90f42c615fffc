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
# `--device cuda` (the side-by-side of bench_train_step_cuda, `scripts/bench BUILD train-cuda`): the GPU
# models of bench_models.h (`--preset gpu`: V=32000 D=1536 L=16 H=12 KV=4 S=128 F=4096 and its 8-expert
# top-2 upcycle) on the GPU, bf16 under torch.autocast("cuda") with fp32 master weights (upcycle cuda's
# precision), eager and, with `--compile`, torch.compile'd; each step ends with torch.cuda.synchronize().
import argparse
import statistics
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

import kernel_report

CASES = ("dense", "moe", "dense_bf16", "moe_bf16")


# (vocab, hidden, ffn, layers, heads, kv heads, head dim): upcycle's `base` Llama preset
# (src/io/model_presets.cpp) and the GPU benchmark's ~0.5B model (bench/bench_models.h).
SHAPES = {"base": (8192, 512, 1408, 8, 8, 8, 64), "gpu": (32000, 1536, 4096, 16, 12, 4, 128)}


def llama_config(a):
    # eps/theta from upcycle's llama defaults.
    V, D, F, L, H, KV, S = SHAPES[a.preset]
    return dict(vocab_size=V, hidden_size=D, intermediate_size=F, num_hidden_layers=L,
                num_attention_heads=H, num_key_value_heads=KV, head_dim=S, max_position_embeddings=4096,
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
    model.to(a.device)
    opt = optimizer(model)
    model.train()
    forward = torch.compile(model) if a.compile else model
    gen = torch.Generator().manual_seed(11)
    ids = torch.randint(0, SHAPES[a.preset][0], (a.batch, a.seq), generator=gen).to(a.device)

    def step():
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=bf16):
            loss = forward(input_ids=ids, labels=ids).loss  # HF shifts labels: T−1 targets per sequence
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if a.device == "cuda":
            torch.cuda.synchronize()  # the step ends when the GPU is done
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
    name = name + ("_cuda" if a.device == "cuda" else "") + ("_compile" if a.compile else "")
    print(f"torch_case name={name} ms_per_step={med:.1f} tokens_per_s={a.batch * a.seq / med * 1e3:.1f} "
          f"loss_at_init={loss:.6f} steps_ms={','.join(f'{m:.0f}' for m in ms)}", flush=True)
    if a.kernels and a.device == "cpu":
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
    p.add_argument("--cases", default=None,
                   help="comma-separated subset of " + ",".join(CASES) + " (default: all; on cuda the bf16 ones)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--preset", default=None, choices=tuple(SHAPES),
                   help="model shapes (default: base on cpu, gpu on cuda; bench/bench_models.h)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (default: eager)")
    p.add_argument("--no-kernels", dest="kernels", action="store_false",
                   help="skip the one verbose step per case that counts MKL / oneDNN kernels")
    a = p.parse_args()
    a.preset = a.preset or ("gpu" if a.device == "cuda" else "base")
    a.cases = a.cases or ("dense_bf16,moe_bf16" if a.device == "cuda" else ",".join(CASES))
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA GPU")
    cases = a.cases.split(",")
    if set(cases) - set(CASES) or a.warmup < 1 or a.iters < 1:
        p.error(f"--cases must be a subset of {CASES}; --warmup and --iters ≥ 1")
    torch.set_num_threads(a.threads)
    if a.device == "cpu":
        kernel_report.print_environment(a.threads)
    else:
        print(f"# device: {torch.cuda.get_device_name(0)}, preset {a.preset}, compile {a.compile}", flush=True)
    measured = {}
    for c in cases:
        model, opt, measured[c] = run_case(a, c)
        print(f"# {c}: attn_implementation={model.config._attn_implementation} "
              f"experts_implementation={getattr(model.config, '_experts_implementation', None) if 'moe' in c else '-'} "
              f"AdamW {adamw_implementation(model)}", flush=True)
    print(f"torch_train_step torch={torch.__version__} transformers={transformers.__version__} threads={a.threads} "
          f"device={a.device} preset={a.preset} compile={a.compile} batch={a.batch} seq={a.seq} warmup={a.warmup} iters={a.iters} attn={a.attn} experts={a.experts or 'default'} "
          + " ".join(f"{c}_tokens_per_s={v:.1f}" for c, v in measured.items()), flush=True)


if __name__ == "__main__":
    main()
