"""`upcycle export gguf CKPT OUT.gguf` judged by gguf-py and transformers' GGUF loader.

- every family: the exported tensors (names, shapes, values) and metadata equal what llama.cpp's
  conventions give for the same checkpoint (gguf_support.hf_dir_to_gguf: gguf-py's tensor map and
  writer, the converter's rotary permute); transformers loads the file, with the source's logits
  where its GGUF loader supports the architecture; `upcycle import` gives back the source tensors;
- --type f16 / bf16 / q8_0 / q5_1 / q5_0 / q4_1 / q4_0: every tensor's bytes equal gguf.quants.quantize
  of the same values (the converter's quantiser), norms, biases and routers left F32 (the k-quants,
  which gguf-py cannot make, are judged by llama.cpp's quantiser in test_gguf_kquants.py);
- SmolLM2 imported then exported: the tokenizer metadata equals the original GGUF's, and transformers'
  tokenizer from the exported file encodes like the one from the original;
- configs llama.cpp would compute differently are refused: exit 2, one line, no file.
"""
import json
import os

import gguf
import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers

import gguf_support as gs
import hf_judge

QT = gs.QT
FAMILIES, TRANSFORMERS_LOADS_GGUF = gs.FAMILIES, gs.TRANSFORMERS_LOADS_GGUF  # see gguf_support
IGNORED_KEYS = {"general.name", "general.file_type", "general.quantization_version",
                "GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"}


def fields(reader):
    out = {}
    for name, field in reader.fields.items():
        if name in IGNORED_KEYS:
            continue
        out[name] = field.contents()
    return out


def tensors(reader):
    return {t.name: t for t in reader.tensors}


def init(upcycle, family, path, *extra):
    upcycle("init", "--arch", family, "--preset", "tiny", "--dtype", "f32", "--seed", "11", *FAMILIES.get(family, []),
            *extra, path)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_exports_like_llama_cpp(upcycle, tmp_path, family):
    src = tmp_path / "src"
    init(upcycle, family, src)
    upcycle("export", "gguf", src, tmp_path / "ours.gguf", "--skip-tokenizer")
    gs.hf_dir_to_gguf(src, tmp_path / "reference.gguf")
    ours, reference = gguf.GGUFReader(tmp_path / "ours.gguf"), gguf.GGUFReader(tmp_path / "reference.gguf")
    reference_fields = {k: v for k, v in fields(reference).items() if not k.startswith("tokenizer.")}
    assert {k: v for k, v in fields(ours).items() if k in reference_fields} == reference_fields
    assert set(reference_fields) <= set(fields(ours))
    theirs = tensors(reference)
    assert sorted(tensors(ours)) == sorted(theirs)
    for name, t in tensors(ours).items():
        assert t.tensor_type == QT.F32 and list(t.shape) == list(theirs[name].shape), name
        assert np.array_equal(t.data.view(np.uint32), theirs[name].data.view(np.uint32)), name

    upcycle("import", tmp_path / "ours.gguf", tmp_path / "back", "--skip-tokenizer")
    for f in ("model.safetensors",):
        source, back = safetensors.numpy.load_file(src / f), safetensors.numpy.load_file(tmp_path / "back" / f)
        assert sorted(source) == sorted(back)
        assert all(np.array_equal(source[n].view(np.uint32), back[n].view(np.uint32)) for n in source)

    if family in TRANSFORMERS_LOADS_GGUF:
        ids = [1, 5, 77, 300, 12, 9, 450, 3, 3, 200, 511, 64, 0, 42, 101, 7]
        reference_logits = hf_judge.logits(hf_judge.load(src), ids)
        from_gguf = transformers.AutoModelForCausalLM.from_pretrained(
            str(tmp_path), gguf_file="ours.gguf", dtype=torch.float32).eval()
        assert hf_judge.max_relative_error(hf_judge.logits(from_gguf, ids), reference_logits) <= 1e-6
        ours_logits = hf_judge.upcycle_logits(upcycle, src, ids, tmp_path / "logits.npy")
        assert hf_judge.max_relative_error(ours_logits, reference_logits) <= 1e-4


@pytest.mark.parametrize("qtype", [QT.F16, QT.BF16, QT.Q8_0, QT.Q5_1, QT.Q5_0, QT.Q4_1, QT.Q4_0], ids=lambda q: q.name)
def test_types_quantize_like_gguf_py(upcycle, tmp_path, qtype):
    src = tmp_path / "src"
    init(upcycle, "qwen2_moe", src)
    upcycle("export", "gguf", src, tmp_path / "ours.gguf", "--skip-tokenizer", "--type", qtype.name.lower())
    gs.hf_dir_to_gguf(src, tmp_path / "f32.gguf")
    ours, reference = tensors(gguf.GGUFReader(tmp_path / "ours.gguf")), tensors(gguf.GGUFReader(tmp_path / "f32.gguf"))
    kept_f32 = 0
    for name, t in ours.items():
        values = np.asarray(reference[name].data, dtype=np.float32)
        stays_f32 = values.ndim == 1 or name.endswith("_norm.weight") or name.endswith("ffn_gate_inp.weight")
        expected_type = QT.F32 if stays_f32 else qtype
        assert t.tensor_type == expected_type, name
        kept_f32 += stays_f32
        expected = gguf.quants.quantize(values, expected_type)
        assert np.array_equal(np.asarray(t.data).view(np.uint8).reshape(-1), expected.view(np.uint8).reshape(-1)), name
    assert 0 < kept_f32 < len(ours)


def test_smollm2_tokenizer_survives_import_and_export(upcycle, tmp_path):
    original = gs.smollm2_gguf()
    upcycle("import", original, tmp_path / "imported")
    upcycle("export", "gguf", tmp_path / "imported", tmp_path / "exported.gguf", "--type", "q8_0")
    ours, theirs = fields(gguf.GGUFReader(tmp_path / "exported.gguf")), fields(gguf.GGUFReader(original))
    for key, value in theirs.items():
        if key.startswith("tokenizer.") and key != "tokenizer.ggml.add_space_prefix":  # llama.cpp ignores it for BPE
            assert ours.get(key) == value, key
    reference = transformers.AutoTokenizer.from_pretrained(str(original.parent), gguf_file=original.name)
    exported = transformers.AutoTokenizer.from_pretrained(str(tmp_path), gguf_file="exported.gguf")
    for text in ["Hello world! 12 + 30 = 42", "<|im_start|>user\nHi<|im_end|>", "  spaces\tand\nnewlines  ",
                 "Ünïcödé 東京 👍🏽"]:
        assert exported(text)["input_ids"] == reference(text)["input_ids"], text
    upcycle("import", tmp_path / "exported.gguf", tmp_path / "again")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "again" / f).read_bytes() == (tmp_path / "imported" / f).read_bytes(), f


def expect_refused(upcycle, args, needle, tmp_path, out):
    before = sorted(os.listdir(out.parent))
    proc = upcycle(*args, expect_rc=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("upcycle: error: ") and needle in lines[0], proc.stderr
    assert sorted(os.listdir(out.parent)) == before, "something was written"


def test_refuses_what_llama_cpp_computes_differently(upcycle, tmp_path):
    out = tmp_path / "out" / "m.gguf"
    out.parent.mkdir()
    upcycle("init", "--arch", "mistral", "--preset", "tiny", tmp_path / "mistral")  # sliding_window 4096
    expect_refused(upcycle, ["export", "gguf", tmp_path / "mistral", out, "--skip-tokenizer"],
                   "sliding_window 4096 is set", tmp_path, out)
    upcycle("init", "--arch", "qwen3_moe", "--preset", "tiny", tmp_path / "q3moe")  # norm_topk_prob false
    expect_refused(upcycle, ["export", "gguf", tmp_path / "q3moe", out, "--skip-tokenizer"],
                   "norm_topk_prob is false", tmp_path, out)
    upcycle("init", "--arch", "llama", "--preset", "tiny", tmp_path / "llama")
    expect_refused(upcycle, ["export", "gguf", tmp_path / "llama", out], "no tokenizer.json beside the weights", tmp_path, out)


def test_refuses_non_finite_weights_for_the_types_llama_cpp_quantizes(upcycle, tmp_path):
    """A NaN or inf weight has no quantisation (llama.cpp's quantiser stops where its scales come out
    non-finite): the legacy and k-quant types refuse it, naming the tensor; f16 and q8_0 keep it as
    gguf-py's converter does."""
    out = tmp_path / "out" / "m.gguf"
    out.parent.mkdir()
    src = tmp_path / "src"
    init(upcycle, "llama", src, "--hidden-size", "256", "--intermediate-size", "512")  # whole super-blocks
    weights = safetensors.numpy.load_file(src / "model.safetensors")
    weights["model.layers.1.mlp.down_proj.weight"][3, 5] = np.inf
    safetensors.numpy.save_file(weights, src / "model.safetensors", metadata={"format": "pt"})
    for qtype in ("q4_k", "q6_k", "q4_0"):
        expect_refused(upcycle, ["export", "gguf", src, out, "--skip-tokenizer", "--type", qtype],
                       "tensor 'model.layers.1.mlp.down_proj.weight' has a non-finite value (inf)", tmp_path, out)
    upcycle("export", "gguf", src, out, "--skip-tokenizer", "--type", "q8_0")
