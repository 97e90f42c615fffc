"""Training-free carving (`convert --preset cmoe`, docs/recipes.md "Training-free carving (CMoE)")
judged by transformers: from the dense model's SwiGLU activations as transformers computes them
(h = act(gate_proj x) * up_proj x on the mlp inputs of the calibration bytes), the shared expert must
hold the neurons of highest activation rate (top ceil(0.1 F) |h| per token), the shared and routed
experts must partition the dense neurons, each router row must be 0.02*sqrt(D) times the unit
gate_proj row of one of its expert's neurons, and transformers must load the carved qwen2_moe and
agree with `upcycle logits` on it."""
import math

import numpy as np
import torch

import hf_judge
import hf_out_support as hf
from test_hf_reads_convert import CALIBRATION, byte_tokenizer, make_source, mlp_inputs


def neuron_indices(rows, dense_rows):
    """For each row of an expert matrix, the index of the identical dense row."""
    lookup = {r.tobytes(): i for i, r in enumerate(dense_rows)}
    return [lookup[r.tobytes()] for r in rows]


def test_carving_follows_transformers_activation_rates(upcycle, tmp_path):
    dense = make_source(upcycle, tmp_path / "dense", "llama")
    byte_tokenizer(dense)
    (tmp_path / "calib.txt").write_text(CALIBRATION)
    out = tmp_path / "carved"
    upcycle("convert", dense, out, "--preset", "cmoe", "--granularity", 4, "--experts", 3, "--shared-experts", 1,
            "--top-k", 2, "--calibration", tmp_path / "calib.txt")
    assert hf.read_config(out)["model_type"] == "qwen2_moe"

    ref = hf_judge.load(dense)
    moe = hf_judge.load(out)
    ids = list(CALIBRATION.encode())  # the byte tokenizer: id = byte, no BOS
    x = mlp_inputs(ref, [0, 1], ids)
    for layer in (0, 1):
        mlp = ref.model.layers[layer].mlp
        gate = mlp.gate_proj.weight.detach().numpy()
        up = mlp.up_proj.weight.detach().numpy()
        F, D = gate.shape
        xt = torch.tensor(x[layer], dtype=torch.float32)
        with torch.no_grad():
            h = (mlp.act_fn(xt @ torch.tensor(gate).T) * (xt @ torch.tensor(up).T)).numpy()
        ka = math.ceil(0.1 * F)
        counts = np.zeros(F, dtype=int)
        for row in np.abs(h):
            counts[np.argsort(-row, kind="stable")[:ka]] += 1

        block = moe.model.layers[layer].mlp
        shared = neuron_indices(block.shared_expert.gate_proj.weight.detach().numpy(), gate)
        width = F // 4
        assert len(shared) == width
        # The most active neurons (a neuron whose count differs by one from the boundary may swap with
        # another through fp32 rounding of near-equal |h| between the two engines).
        boundary = np.sort(counts)[::-1][width - 1]
        assert min(counts[shared]) >= boundary - 1
        outside = np.setdiff1d(np.arange(F), shared)
        assert max(counts[outside]) <= boundary + 1

        experts = [neuron_indices(e.gate_proj.weight.detach().numpy(), gate) for e in expert_modules(block)]
        assert sorted(shared + sum(experts, [])) == list(range(F))
        router = block.gate.weight.detach().double().numpy()
        assert router.shape == (3, D)
        unit = gate.astype(np.float64) / np.linalg.norm(gate.astype(np.float64), axis=1, keepdims=True)
        for e, members in enumerate(experts):
            distance = np.abs(unit[members] * 0.02 * math.sqrt(D) - router[e]).max(axis=1)
            assert distance.min() < 1e-6, f"layer {layer}: router row {e} is no member's gate row"
    hf.judge(upcycle, out, tmp_path)


def expert_modules(block):
    """The routed experts as modules with gate_proj, whichever expert layout transformers built."""
    experts = block.experts
    if hasattr(experts, "gate_up_proj"):  # transformers-5 fused experts: [E, 2F', D], gate first
        w = experts.gate_up_proj.detach()
        half = w.shape[1] // 2

        class View:
            def __init__(self, rows):
                self.gate_proj = type("W", (), {"weight": rows})()
        return [View(w[e, :half]) for e in range(w.shape[0])]
    return list(experts)
