"""torch.optim.AdamW + torch.nn.utils.clip_grad_norm_ as the oracle of upcycle's optimizer step.

Usage: adamw_reference.py CASE_DIR...  (run by tests/unit/train_adamw_torch_test.cpp; one process for
all cases, as importing torch and transformers is most of its time)

CASE_DIR/case.json, written by the C++ test:
  {"model_dir": DIR holding an upcycle-written config.json,
   "tensors": [{"name", "shape"}, ...]   upcycle's flat parameter layout, in order,
   "params": "params.npy"                the flat initial parameters (float32),
   "steps": [{"lr", "grad": "grad-0.npy"}, ...],
   "beta1", "beta2", "eps", "weight_decay", "max_norm"}

What it does, with transformers and torch as the judges:
  * builds the model transformers makes from that config.json, saves it (safetensors) and reports
    the tensor names it wrote: the names of a real checkpoint of this config;
  * decides weight decay per saved tensor twice — by the module owning the parameter (an *RMSNorm
    module or a `bias` parameter: no decay) and by transformers.Trainer.get_decay_parameter_names —
    and fails unless the two agree;
  * runs clip_grad_norm_(max_norm) and torch.optim.AdamW (two param groups: decay / no decay,
    foreach=False: the single-tensor reference loop) over the steps on the given gradients.
Writes CASE_DIR/torch.json {"saved_names", "no_decay", "norms"} and torch_params.f32,
torch_exp_avg.f32, torch_exp_avg_sq.f32 (flat, upcycle's layout, little-endian float32).
"""
import json
import pathlib
import re
import sys
import tempfile

import numpy as np
import torch
import transformers
from safetensors import safe_open

torch.set_num_threads(1)
transformers.utils.logging.disable_progress_bar()
transformers.logging.set_verbosity_error()

# Saved (per-expert) names → the fused parameter transformers 5 holds in memory.
_EXPERT = re.compile(r"^(model\.layers\.\d+)\.(?:mlp|block_sparse_moe)\.experts\.\d+\.(\w+)\.weight$")
_FUSED = {"gate_proj": "gate_up_proj", "up_proj": "gate_up_proj", "w1": "gate_up_proj", "w3": "gate_up_proj",
          "down_proj": "down_proj", "w2": "down_proj"}


def in_memory_name(saved, params):
    if saved in params:
        return saved
    m = _EXPERT.match(saved)
    if m:
        return f"{m.group(1)}.mlp.experts.{_FUSED[m.group(2)]}"
    return saved.replace(".block_sparse_moe.gate.", ".mlp.gate.")  # Mixtral's router, v5 name


def no_decay_names(model, saved_names):
    params = dict(model.named_parameters())
    owner = {}
    for module_name, module in model.named_modules():
        for leaf, _ in module.named_parameters(recurse=False):
            owner[f"{module_name}.{leaf}" if module_name else leaf] = (type(module).__name__, leaf)
    trainer_decays = set(transformers.Trainer.get_decay_parameter_names(None, model))
    result = []
    for saved in saved_names:
        name = in_memory_name(saved, params)
        if name not in params:
            sys.exit(f"adamw_reference: saved tensor {saved} has no parameter ({name})")
        module_type, leaf = owner[name]
        by_module = module_type.endswith("RMSNorm") or leaf == "bias"
        by_trainer = name not in trainer_decays
        if by_module != by_trainer:
            sys.exit(f"adamw_reference: {saved}: module {module_type} says no-decay={by_module}, "
                     f"Trainer.get_decay_parameter_names says {by_trainer}")
        if by_module:
            result.append(saved)
    return result


def saved_tensor_names(model):
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        names = []
        for f in sorted(pathlib.Path(tmp).glob("*.safetensors")):
            with safe_open(str(f), "pt") as st:
                names += list(st.keys())
    return names


def main(case_dir):
    case_dir = pathlib.Path(case_dir)
    case = json.loads((case_dir / "case.json").read_text())
    config = transformers.AutoConfig.from_pretrained(case["model_dir"])
    model = transformers.AutoModelForCausalLM.from_config(config)
    saved = saved_tensor_names(model)
    no_decay = set(no_decay_names(model, saved))

    flat = np.load(case_dir / case["params"])
    tensors, offset = [], 0
    for t in case["tensors"]:
        n = int(np.prod(t["shape"]))
        p = torch.nn.Parameter(torch.from_numpy(flat[offset:offset + n].copy()).reshape(t["shape"]))
        tensors.append((t["name"], p, offset, n))
        offset += n
    groups = [{"params": [p for name, p, _, _ in tensors if name not in no_decay],
               "weight_decay": case["weight_decay"]},
              {"params": [p for name, p, _, _ in tensors if name in no_decay], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=case["steps"][0]["lr"], betas=(case["beta1"], case["beta2"]),
                            eps=case["eps"], foreach=False)
    norms = []
    for step in case["steps"]:
        g = np.load(case_dir / step["grad"])
        for _, p, off, n in tensors:
            p.grad = torch.from_numpy(g[off:off + n].copy()).reshape(p.shape)
        norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p, _, _ in tensors], case["max_norm"])))
        for group in opt.param_groups:
            group["lr"] = step["lr"]
        opt.step()

    def flat_of(get):
        return np.concatenate([get(p).detach().reshape(-1).numpy() for _, p, _, _ in tensors]).astype("<f4")

    flat_of(lambda p: p).tofile(case_dir / "torch_params.f32")
    flat_of(lambda p: opt.state[p]["exp_avg"]).tofile(case_dir / "torch_exp_avg.f32")
    flat_of(lambda p: opt.state[p]["exp_avg_sq"]).tofile(case_dir / "torch_exp_avg_sq.f32")
    (case_dir / "torch.json").write_text(json.dumps({"saved_names": saved, "no_decay": sorted(no_decay),
                                                     "norms": norms}))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: adamw_reference.py CASE_DIR...")
    for case_dir in sys.argv[1:]:
        main(case_dir)
