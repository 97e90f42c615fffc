"""transformers reads the checkpoints `upcycle train` writes, and computes what upcycle computes.

A few AdamW steps at a high learning rate on a learnable token stream move every weight, norms and
biases included, away from the sharpened init; the checkpoint (HF directory, F32, per-expert layout
whatever the source's) must load without a complaint and match upcycle's logits and greedy tokens.
Sources: dense llama (tied embeddings) and qwen2 (q/k/v biases), MoE mixtral and qwen2_moe (shared
expert, read from a fused bf16 file).
"""
import numpy as np
import pytest

import hf_judge
import hf_out_support as hf
from token_data import write_dataset

STEPS = 4

CASES = [("llama", ["--tie-embeddings", "true"], "f32"), ("qwen2", [], "f32"), ("mixtral", [], "f32"),
         ("qwen2_moe", ["--expert-layout", "fused"], "bf16")]


@pytest.mark.parametrize("arch,flags,dtype", CASES, ids=[c[0] for c in CASES])
def test_train_checkpoint(upcycle, tmp_path, arch, flags, dtype):
    source = hf.init(upcycle, tmp_path / "source", arch, *flags, dtype=dtype)
    hf.sharpen(source)
    stream = (np.arange(8192) * 7 % 61 + 3).tolist()  # next token = a function of the current one
    data = write_dataset(tmp_path / "data", 512, stream)
    run = tmp_path / "run"
    upcycle("train", "--model", source, "--data", data, "--out", run, "--steps", STEPS, "--micro-batch", 2,
            "--seq-len", 32, "--lr", 1e-2, "--schedule", "constant", "--weight-decay", 0.1, "--save-every", STEPS,
            "--eval-every", 0, "--threads", 1)
    checkpoint = run / "checkpoints" / f"step-{STEPS:08d}"
    config = hf.read_config(checkpoint)
    assert config["torch_dtype"] == "float32" and config["model_type"] == arch
    names = hf.tensor_names(checkpoint)
    assert not any(n.endswith("experts.gate_up_proj") for n in names)  # training saves per-expert names
    trained = hf.judge(upcycle, checkpoint, tmp_path)
    hf.assert_differs(trained, hf.judge(upcycle, source, tmp_path, generate=False), f"{STEPS} training steps")
    # Norm weights and biases were trained too: the file holds more than the sharpened init's values.
    model = hf_judge.load(checkpoint)
    start = hf_judge.load(source)
    for name, param in model.named_parameters():
        if name.endswith("norm.weight") or name.endswith(".bias"):
            assert not np.array_equal(param.detach().numpy(), start.get_parameter(name).detach().float().numpy()), name
