"""`upcycle export gguf --type q6_k|q5_k|q4_k|q3_k|q2_k|q5_1|q5_0|q4_1|q4_0` judged by llama.cpp's own
quantiser (llama-cpp-python 0.3.36, compiled from source by scripts/setup):

- llama_model_quantize (what `llama-quantize --pure` runs: every quantisable tensor to the one type,
  no importance matrix, so ggml's quantize_row_*_ref) turns upcycle's f32 export of the same
  checkpoint into a file whose every tensor (name, type, shape, bytes) equals upcycle's direct export,
  and whose general.file_type equals upcycle's. Tensors llama.cpp keeps F32 (norms, biases, routers)
  are compared too;
- models: random llama-with-experts (mixtral) and qwen2_moe whose rows are whole 256-value
  super-blocks (stacked 3-D expert tensors included), a random llama 576 wide, and the real
  SmolLM2-135M-Instruct (hidden 576: rows that are not whole super-blocks take llama.cpp's fallback
  type, Q4_K → Q5_0 and so on; ffn_down's 1536-wide rows keep the k-quant);
- llama.cpp loads upcycle's SmolLM2 k-quant export and decodes greedily the same tokens as from the
  file it quantised itself.
"""
import collections
import ctypes
import time

import gguf
import llama_cpp
import numpy as np
import pytest

import gguf_support as gs
from llama_cpp_support import greedy, llama

QT = gs.QT
# --type → the llama_ftype llama.cpp's quantiser is asked for (with pure, every tensor gets its type).
FTYPES = {
    "q6_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K, "q5_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_S,
    "q4_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_S, "q3_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q3_K_S,
    "q2_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q2_K, "q5_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_1,
    "q5_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_0, "q4_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1,
    "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
}
WIDE = ["--hidden-size", "256", "--heads", "4", "--kv-heads", "2", "--seed", "5", "--dtype", "f32"]
MODELS = {  # rows of 256 or 512 values everywhere, experts stacked into 3-D tensors
    "mixtral256": ["--arch", "mixtral", *WIDE, "--intermediate-size", "512"],
    "qwen2_moe256": ["--arch", "qwen2_moe", *WIDE, "--moe-intermediate-size", "256",
                     "--shared-expert-intermediate-size", "512"],
    "llama576": ["--arch", "llama", "--hidden-size", "576", "--heads", "9", "--kv-heads", "3",
                 "--intermediate-size", "1536", "--seed", "6", "--dtype", "f32"],  # SmolLM2's widths
}
NEW_TOKENS = 16
PROMPT = "<|im_start|>user\nName three colours of the sea at dawn.<|im_end|>\n<|im_start|>assistant\n"


def llama_cpp_quantize(src, dst, qtype):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[qtype]
    params.pure = True
    params.nthread = 1  # as upcycle's exporter; the bytes do not depend on it
    assert llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params)) == 0


def file_type(reader):
    return int(reader.fields["general.file_type"].contents())


def assert_same_tensors(ours_path, theirs_path):
    """Every tensor byte-identical; returns how many tensors of each type the file holds."""
    ours_reader, theirs_reader = gguf.GGUFReader(ours_path), gguf.GGUFReader(theirs_path)
    ours = {t.name: t for t in ours_reader.tensors}
    theirs = {t.name: t for t in theirs_reader.tensors}
    assert sorted(ours) == sorted(theirs)
    types = collections.Counter()
    for name, t in theirs.items():
        assert ours[name].tensor_type == t.tensor_type, (name, ours[name].tensor_type, t.tensor_type)
        assert list(ours[name].shape) == list(t.shape), name
        a, b = np.asarray(ours[name].data).view(np.uint8).reshape(-1), np.asarray(t.data).view(np.uint8).reshape(-1)
        if not np.array_equal(a, b):
            block = gguf.constants.GGML_QUANT_SIZES[t.tensor_type][1]
            differ = np.unique(np.nonzero(a != b)[0] // block).size
            pytest.fail(f"{name} ({t.tensor_type.name}): {differ} of {a.size // block} blocks differ from llama.cpp's")
        types[t.tensor_type.name] += 1
    assert file_type(ours_reader) == file_type(theirs_reader)
    return types


def export_and_judge(upcycle, checkpoint, f32_gguf, qtype, tmp_path, *extra):
    """upcycle's direct export vs llama.cpp's quantiser run on upcycle's f32 export (`f32_gguf`, made
    here when it does not exist); returns the tensor types, prints both quantisers' wall times."""
    if not f32_gguf.exists():
        upcycle("export", "gguf", checkpoint, f32_gguf, "--type", "f32", *extra)
    start = time.perf_counter()
    upcycle("export", "gguf", checkpoint, tmp_path / "ours.gguf", "--type", qtype, *extra)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    llama_cpp_quantize(f32_gguf, tmp_path / "theirs.gguf", qtype)
    theirs_s = time.perf_counter() - start
    print(f"{checkpoint.name} {qtype}: upcycle export {ours_s:.2f} s, llama_model_quantize (1 thread) {theirs_s:.2f} s")
    return assert_same_tensors(tmp_path / "ours.gguf", tmp_path / "theirs.gguf")


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("qtype", list(FTYPES))
def test_random_models_quantize_like_llama_cpp(upcycle, tmp_path, model, qtype):
    upcycle("init", "--preset", "tiny", *MODELS[model], tmp_path / "src")
    types = export_and_judge(upcycle, tmp_path / "src", tmp_path / "f32.gguf", qtype, tmp_path, "--skip-tokenizer")
    requested = QT[qtype.upper()].name
    if model.endswith("256"):
        assert set(types) == {"F32", requested}, types
    else:
        assert types[requested] >= 2, types  # ffn_down's 1536-wide rows at least


@pytest.fixture(scope="module")
def smollm2(upcycle, tmp_path_factory):
    d = tmp_path_factory.mktemp("smollm2")
    upcycle("import", gs.smollm2_gguf(), d / "SmolLM2")
    return d / "SmolLM2"


@pytest.mark.parametrize("qtype", ["q6_k", "q5_k", "q4_k"])
def test_smollm2_quantizes_and_runs_like_llama_cpp(upcycle, smollm2, tmp_path, qtype):
    types = export_and_judge(upcycle, smollm2, smollm2.parent / "f32.gguf", qtype, tmp_path)
    fallback = {"q6_k": "Q8_0", "q5_k": "Q5_1", "q4_k": "Q5_0"}[qtype]
    assert types[qtype.upper()] == 30 and types[fallback] > 0, types  # ffn_down of the 30 layers
    ours, theirs = llama(tmp_path / "ours.gguf"), llama(tmp_path / "theirs.gguf")
    ids = ours.tokenize(PROMPT.encode(), add_bos=False, special=True)
    tokens = greedy(ours, ids, NEW_TOKENS)
    assert tokens == greedy(theirs, ids, NEW_TOKENS)
    assert len(set(tokens)) > 1, tokens  # a real continuation, not a constant
    print(f"SmolLM2 {qtype}: {dict(types)}, greedy {ours.detokenize(tokens).decode(errors='replace')!r}")
