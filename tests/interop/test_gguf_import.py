"""`upcycle import GGUF OUT` judged by llama.cpp's gguf-py and transformers' GGUF loader.

(a) every supported ggml type dequantises bit for bit like gguf.quants.dequantize (random blocks,
    all quant bit patterns, finite f16 scales), and --dtype bf16 rounds those values as torch does;
(b) the real SmolLM2-135M-Instruct Q4_1 file: the imported weights equal, tensor for tensor, what
    transformers makes of the GGUF itself; `upcycle logits` and transformers agree on 64+ tokens;
    the import's peak memory stays below one f32 tensor;
(c) the rebuilt tokenizer.json encodes a varied text set like transformers' tokenizer built from the
    GGUF, like HF tokenizers and AutoTokenizer loading it, and like upcycle's own tokenizer; for the
    Llama-3 and Qwen3 vocabularies (GGUF metadata made from their real tokenizer.json files the way
    convert_hf_to_gguf does) it encodes like the original tokenizer.json;
(d) tiny models of every family written as GGUF in llama.cpp's conventions (gguf's tensor map,
    stacked experts, rotary interleave) import to the exact source tensors, transformers loads them
    cleanly, and where transformers' GGUF loader supports the architecture it agrees too;
(e) broken and unsupported files: exit 2, one line naming the file and the key or tensor, no OUT.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import unicodedata

import gguf
import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import tokenizers
import torch
import transformers
from transformers.convert_slow_tokenizer import bytes_to_unicode

import gguf_support as gs
import hf_judge

QT = gs.QT
SUPPORTED = [QT.F32, QT.F16, QT.BF16, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0,
             QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K]
SHARED = pathlib.Path(os.environ.get("UPCYCLE_SHARED_DATA_DIR", "")) / "tokenizers"


def read_dir(path, framework="numpy"):
    out = {}
    for f in sorted(pathlib.Path(path).glob("*.safetensors")):
        out.update((safetensors.numpy if framework == "numpy" else safetensors.torch).load_file(f))
    return out


def run_import(upcycle, gguf_path, out, *flags, expect_rc=0):
    return upcycle("import", gguf_path, out, *flags, expect_rc=expect_rc)


# ---------------------------------------------------------------------------------------------- (a)

@pytest.fixture(scope="module")
def every_type(upcycle, tmp_path_factory):
    """A 2-layer qwen3 (unpermuted architecture) whose tensors cycle through every supported type."""
    d = tmp_path_factory.mktemp("every_type")
    upcycle("init", "--arch", "qwen3", "--preset", "tiny", "--dtype", "f32", "--vocab-size", "256",
            "--hidden-size", "256", "--heads", "4", "--kv-heads", "2", "--head-dim", "64",
            "--intermediate-size", "512", "--tie-embeddings", "false", d / "src")
    rng = np.random.default_rng(15)
    chosen = {}

    def qtype(name, value):
        t = SUPPORTED[len(chosen) % len(SUPPORTED)]
        chosen[name] = t
        rows, length = (1, value.shape[0]) if value.ndim == 1 else value.shape
        data, raw = gs.random_blocks(rng, t, rows, length)
        return (data.reshape(-1) if value.ndim == 1 else data), raw

    gs.hf_dir_to_gguf(d / "src", d / "every_type.gguf", qtype=qtype)
    return d / "every_type.gguf", chosen


def test_every_type_dequantizes_like_gguf_py(upcycle, every_type, tmp_path):
    path, chosen = every_type
    assert set(chosen.values()) == set(SUPPORTED)
    run_import(upcycle, path, tmp_path / "f32", "--skip-tokenizer", "--dtype", "f32")
    run_import(upcycle, path, tmp_path / "bf16", "--skip-tokenizer", "--dtype", "bf16")
    got_f32 = read_dir(tmp_path / "f32")
    got_bf16 = read_dir(tmp_path / "bf16", "torch")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3, 2)
    hf_of = {}
    for hf_name in got_f32:
        base, suffix = hf_name.rsplit(".", 1)
        hf_of[names.get_name(base) + "." + suffix] = hf_name
    reader = gguf.GGUFReader(path)
    assert sorted(hf_of) == sorted(t.name for t in reader.tensors)
    for t in reader.tensors:
        expected = gs.expected_f32(t)
        ours = got_f32[hf_of[t.name]]
        assert ours.dtype == np.float32 and ours.shape == expected.shape, t.name
        mismatch = np.flatnonzero(ours.view(np.uint32) != expected.view(np.uint32))
        assert mismatch.size == 0, (f"{t.name} ({t.tensor_type.name}): {mismatch.size} values differ, first at "
                                    f"{mismatch[0]}: {ours.flat[mismatch[0]]!r} vs {expected.flat[mismatch[0]]!r}")
        rounded = torch.from_numpy(expected.copy()).to(torch.bfloat16)
        assert torch.equal(got_bf16[hf_of[t.name]].view(torch.int16), rounded.view(torch.int16)), t.name


# ---------------------------------------------------------------------------------------------- (b)

# Runs in a small intermediate interpreter: a child's ru_maxrss includes what it inherited from its
# parent before exec, and this pytest process holds torch (hundreds of MB).
_MEASURE = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], dict(os.environ, OMP_NUM_THREADS="1"))
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)
"""


def import_measuring_rss(binary, gguf_path, out):
    """Runs `upcycle import` and returns its peak resident set size in bytes (wait4's rusage)."""
    proc = subprocess.run([sys.executable, "-c", _MEASURE, binary, "import", str(gguf_path), str(out)],
                          capture_output=True, text=True)
    code, rss = map(int, proc.stdout.split()[-2:])
    assert code == 0, proc.stderr
    return rss


@pytest.fixture(scope="module")
def smollm2(upcycle, tmp_path_factory):
    path = gs.smollm2_gguf()
    out = tmp_path_factory.mktemp("smollm2") / "imported"
    rss = import_measuring_rss(upcycle.binary, path, out)
    return path, out, rss


@pytest.fixture(scope="module")
def smollm2_models(smollm2):
    path, out, _ = smollm2
    from_gguf = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    return from_gguf, hf_judge.load(out)


@pytest.fixture(scope="module")
def smollm2_gguf_tokenizer(smollm2):
    path = smollm2[0]
    return transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def test_smollm2_import_streams(smollm2):
    path, out, rss = smollm2
    reader = gguf.GGUFReader(path)
    largest_f32 = max(int(np.prod(t.shape)) for t in reader.tensors) * 4
    assert rss < largest_f32, f"peak RSS {rss / 2**20:.1f} MiB ≥ the largest tensor in f32 ({largest_f32 / 2**20:.1f} MiB)"


def test_smollm2_weights_equal_transformers_gguf_loader(smollm2_models):
    from_gguf, imported = smollm2_models
    theirs, ours = from_gguf.state_dict(), imported.state_dict()
    assert sorted(theirs) == sorted(ours)
    for name, value in theirs.items():
        assert torch.equal(value, ours[name]), name


def test_smollm2_logits_agree(upcycle, smollm2, smollm2_models, smollm2_gguf_tokenizer, tmp_path):
    text = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nWrite a short poem about the sea, the wind and 42 lighthouses, then explain in "
            "two sentences why lighthouses matter to sailors at night, and name three famous ones.<|im_end|>\n"
            "<|im_start|>assistant\n")
    ids = smollm2_gguf_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) >= 64
    from_gguf, imported = smollm2_models
    reference = hf_judge.logits(from_gguf, ids)
    ours = hf_judge.upcycle_logits(upcycle, smollm2[1], ids, tmp_path / "logits.npy")
    assert hf_judge.max_relative_error(ours, reference) <= 1e-4
    assert hf_judge.max_relative_error(hf_judge.logits(imported, ids), reference) <= 1e-6


# ---------------------------------------------------------------------------------------------- (c)

def llama_cpp_smollm_reference(gguf_path):
    """transformers' GGUF tokenizer with llama.cpp's pre-tokenizer for 'smollm' installed the way
    transformers installs it for the names its table knows (set_split_regex): llama-vocab.cpp splits
    every \\p{N} off first, then applies GPT-2's regex. transformers' table lacks 'smollm' and keeps
    GPT-2's regex alone, which differs where a space precedes a non-ASCII numeric (" ½": llama.cpp and
    SmolLM2's own tokenizer.json, whose Digits(individual_digits) splits it, give "Ġ" + "Â½";
    transformers gives "ĠÂ" + "½")."""
    fixed = transformers.AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    fixed.backend_tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Sequence([
        tokenizers.pre_tokenizers.Split(tokenizers.Regex(r"\p{N}"), behavior="isolated"),
        tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    return fixed


def space_then_non_ascii_numeric(text):
    return any(a.isspace() and unicodedata.category(b).startswith("N") and not b.isascii() for a, b in zip(text, text[1:]))


def test_smollm2_tokenizer_encodes_like_llama_cpp_rules(upcycle, smollm2, smollm2_gguf_tokenizer, tmp_path):
    out = smollm2[1]
    reference = llama_cpp_smollm_reference(smollm2[0])
    ours_hf = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    ours_auto = transformers.AutoTokenizer.from_pretrained(str(out))
    ours_upcycle = gs.upcycle_encode(upcycle, out / "tokenizer.json", gs.TEXTS, tmp_path)
    differs_from_transformers = []
    for text, upcycle_ids in zip(gs.TEXTS, ours_upcycle):
        expected = reference(text, add_special_tokens=False)["input_ids"]
        assert ours_hf.encode(text, add_special_tokens=False).ids == expected, text
        assert ours_auto(text, add_special_tokens=False)["input_ids"] == expected, text
        assert upcycle_ids == expected, text
        assert ours_hf.encode(text).ids == expected and ours_auto(text)["input_ids"] == expected, text  # no BOS
        assert ours_auto.decode(expected) == smollm2_gguf_tokenizer.decode(expected), text
        if smollm2_gguf_tokenizer(text, add_special_tokens=False)["input_ids"] != expected:
            differs_from_transformers.append(text)
    # transformers' own GGUF tokenizer agrees everywhere but on its missing 'smollm' split.
    assert differs_from_transformers == [t for t in gs.TEXTS if space_then_non_ascii_numeric(t)] != []
    config = json.loads((out / "tokenizer_config.json").read_text())
    for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
        assert config[name] == getattr(smollm2_gguf_tokenizer, name), name
    assert config["chat_template"] == smollm2_gguf_tokenizer.chat_template


def gguf_tokenizer_from_hf(tokenizer_json, pre, add_bos):
    """The tokenizer metadata convert_hf_to_gguf.py writes for a byte-level BPE tokenizer.json
    (get_vocab_base: tokens in id order, CONTROL for special added tokens, USER_DEFINED for other
    added tokens, [PADn] UNUSED for holes; merges as "a b")."""
    spec = json.loads(pathlib.Path(tokenizer_json).read_text())
    vocab = dict(spec["model"]["vocab"])
    types = {}
    for added in spec["added_tokens"]:
        vocab[added["content"]] = added["id"]
        types[added["id"]] = gguf.TokenType.CONTROL if added["special"] else gguf.TokenType.USER_DEFINED
    by_id = {i: t for t, i in vocab.items()}
    size = max(by_id) + 1
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    toktypes = [types.get(i, gguf.TokenType.NORMAL if i in by_id else gguf.TokenType.UNUSED) for i in range(size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    bos = next((a["id"] for a in spec["added_tokens"] if a["content"] in ("<|begin_of_text|>", "<|endoftext|>")), 0)

    def add(w):
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(toktypes)
        w.add_token_merges(merges)
        w.add_bos_token_id(bos)
        w.add_add_bos_token(add_bos)
    return size, add


@pytest.mark.parametrize("name,pre,add_bos", [("llama3", "llama-bpe", True), ("qwen3", "qwen2", False)])
def test_real_vocabularies_round_trip(upcycle, tmp_path, name, pre, add_bos):
    """GGUF metadata made from a real tokenizer.json imports to a tokenizer that encodes like it.

    A GGUF stores no normalizer: Qwen3's tokenizer.json applies NFC, llama.cpp and transformers' GGUF
    loader do not, so its texts are compared NFC-normalised (the original normalises them anyway).
    add_bos follows llama.cpp: a BOS in front of the ids when tokenizer.ggml.add_bos_token is true."""
    original = SHARED / name / "tokenizer.json"
    size, add_tokenizer = gguf_tokenizer_from_hf(original, pre, add_bos)
    upcycle("init", "--arch", "llama", "--preset", "tiny", "--dtype", "f32", "--layers", "1",
            "--vocab-size", size, "--tie-embeddings", "true", tmp_path / "src")
    f16 = lambda gguf_name, value: (value.astype(np.float16), None)  # noqa: E731  halves the file
    gs.hf_dir_to_gguf(tmp_path / "src", tmp_path / "m.gguf", tokenizer=add_tokenizer, qtype=f16)
    run_import(upcycle, tmp_path / "m.gguf", tmp_path / "out")
    reference = tokenizers.Tokenizer.from_file(str(original))
    normalizes = json.loads(original.read_text())["normalizer"] is not None
    ours = tokenizers.Tokenizer.from_file(str(tmp_path / "out" / "tokenizer.json"))
    ours_auto = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    bos = json.loads((tmp_path / "out" / "config.json").read_text())["bos_token_id"]
    specials = [a["content"] for a in json.loads(original.read_text())["added_tokens"][:3]]
    texts = gs.TEXTS + [f"{specials[0]}Hi {specials[1]} there{specials[2]}!"]
    texts = [unicodedata.normalize("NFC", t) if normalizes else t for t in texts]
    for text, upcycle_ids in zip(texts, gs.upcycle_encode(upcycle, tmp_path / "out" / "tokenizer.json", texts, tmp_path)):
        expected = reference.encode(text, add_special_tokens=False).ids
        assert ours.encode(text, add_special_tokens=False).ids == expected, text
        assert upcycle_ids == expected, text
        assert ours_auto(text, add_special_tokens=False)["input_ids"] == expected, text
        with_special = [bos] + expected if add_bos else expected
        assert ours.encode(text).ids == with_special and ours_auto(text)["input_ids"] == with_special, text


# ---------------------------------------------------------------------------------------------- (d)

FAMILIES, TRANSFORMERS_LOADS_GGUF = gs.FAMILIES, gs.TRANSFORMERS_LOADS_GGUF


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_round_trip(upcycle, tmp_path, family):
    src, path, out = tmp_path / "src", tmp_path / f"{family}.gguf", tmp_path / "out"
    upcycle("init", "--arch", family, "--preset", "tiny", "--dtype", "f32", "--seed", "7", *FAMILIES[family], src)
    gs.hf_dir_to_gguf(src, path)
    run_import(upcycle, path, out, "--skip-tokenizer")
    source, imported = read_dir(src), read_dir(out)
    assert sorted(source) == sorted(imported)
    for name, value in source.items():
        assert np.array_equal(value.view(np.uint32), imported[name].view(np.uint32)), name
    ids = [1, 5, 77, 300, 12, 9, 450, 3, 3, 200, 511, 64, 0, 42, 101, 7]
    reference_model = hf_judge.load(src)
    reference = hf_judge.logits(reference_model, ids)
    assert hf_judge.max_relative_error(hf_judge.logits(hf_judge.load(out), ids), reference) == 0.0
    ours = hf_judge.upcycle_logits(upcycle, out, ids, tmp_path / "logits.npy")
    assert hf_judge.max_relative_error(ours, reference) <= 1e-4
    if family not in TRANSFORMERS_LOADS_GGUF:
        return
    from_gguf = transformers.AutoModelForCausalLM.from_pretrained(
        str(tmp_path), gguf_file=path.name, dtype=torch.float32).eval()
    assert type(from_gguf) is type(reference_model)
    assert hf_judge.max_relative_error(hf_judge.logits(from_gguf, ids), reference) <= 1e-6
    # Quantised (Q8_0 matrices): the imported model equals transformers' own reading of the GGUF,
    # expert slices, rotary un-interleave and the shared-expert gate vector included.
    q8 = tmp_path / f"{family}-q8.gguf"
    gs.hf_dir_to_gguf(src, q8, qtype=lambda name, v: (gguf.quants.quantize(v, QT.Q8_0), QT.Q8_0) if v.ndim >= 2
                      else (v, None))
    run_import(upcycle, q8, tmp_path / "out-q8", "--skip-tokenizer")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(
        str(tmp_path), gguf_file=q8.name, dtype=torch.float32).state_dict()
    ours = hf_judge.load(tmp_path / "out-q8").state_dict()
    assert sorted(theirs) == sorted(ours)
    assert not all(torch.equal(ours[n], torch.from_numpy(source[n])) for n in source)  # it is quantised
    for name, value in theirs.items():
        assert torch.equal(value, ours[name]), name


# ---------------------------------------------------------------------------------------------- (e)

@pytest.fixture(scope="module")
def small_gguf(upcycle, tmp_path_factory):
    """A tiny llama GGUF with a byte-level tokenizer, the base the broken files are made from."""
    d = tmp_path_factory.mktemp("small")
    upcycle("init", "--arch", "llama", "--preset", "tiny", "--dtype", "f32", "--layers", "1", d / "src")
    alphabet = bytes_to_unicode()
    tokens = [alphabet[b] for b in range(256)] + ["hi"] + [f"<t{i}>" for i in range(255)]

    def add(w):
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2")
        w.add_token_list(tokens)
        w.add_token_merges(["h i"])
    gs.hf_dir_to_gguf(d / "src", d / "small.gguf", tokenizer=add)
    return d / "small.gguf"


def write_variant(tmp_path, base, name, edit):
    data = bytearray(base.read_bytes())
    data = edit(data)
    p = tmp_path / name
    p.write_bytes(bytes(data))
    return p


def small_with(upcycle, tmp_path, name, *, extra=None, qtype=None, arch_family="llama", init=()):
    src = tmp_path / f"src-{name}"
    upcycle("init", "--arch", arch_family, "--preset", "tiny", "--dtype", "f32", "--layers", "1", *init, src)
    p = tmp_path / f"{name}.gguf"
    gs.hf_dir_to_gguf(src, p, extra=extra, qtype=qtype)
    return p


def expect_refused(upcycle, gguf_path, needle, tmp_path, *flags):
    out = tmp_path / "refused-out"
    before = sorted(os.listdir(tmp_path))
    proc = run_import(upcycle, gguf_path, out, *flags, expect_rc=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("upcycle: error: "), proc.stderr
    assert str(gguf_path) in lines[0] and needle in lines[0], lines[0]
    assert not out.exists() and sorted(os.listdir(tmp_path)) == before, "something was written"


def test_small_gguf_imports(upcycle, small_gguf, tmp_path):
    run_import(upcycle, small_gguf, tmp_path / "ok")
    assert tokenizers.Tokenizer.from_file(str(tmp_path / "ok" / "tokenizer.json")).encode("hi").ids == [256]


def test_refuses_truncated_files(upcycle, small_gguf, tmp_path):
    size = small_gguf.stat().st_size
    reader = gguf.GGUFReader(small_gguf)
    last = max(reader.tensors, key=lambda t: t.data_offset)
    cut = write_variant(tmp_path, small_gguf, "cut-data.gguf", lambda b: b[:size - 10])
    expect_refused(upcycle, cut, f"tensor '{last.name}'", tmp_path)
    in_tokens = small_gguf.read_bytes().find(b"<t7>")
    cut = write_variant(tmp_path, small_gguf, "cut-meta.gguf", lambda b: b[:in_tokens + 2])
    expect_refused(upcycle, cut, "key 'tokenizer.ggml.tokens'", tmp_path)


def test_refuses_bad_magic(upcycle, small_gguf, tmp_path):
    bad = write_variant(tmp_path, small_gguf, "magic.gguf", lambda b: b"GGML" + b[4:])
    expect_refused(upcycle, bad, "not a GGUF file: bad magic", tmp_path)


def test_refuses_unsupported_quant_type(upcycle, tmp_path):
    rng = np.random.default_rng(1)

    def iq4_nl_ffn_up(name, value):  # IQ4_NL: 32-element blocks, a type upcycle does not decode
        if name != "blk.0.ffn_up.weight":
            return value, None
        return gs.random_blocks(rng, QT.Q4_0, *value.shape)[0], QT.IQ4_NL
    p = small_with(upcycle, tmp_path, "iq4nl", qtype=iq4_nl_ffn_up)
    expect_refused(upcycle, p, "tensor 'blk.0.ffn_up.weight' has type IQ4_NL", tmp_path, "--skip-tokenizer")


def test_refuses_unknown_architecture(upcycle, small_gguf, tmp_path):
    w = gguf.GGUFWriter(str(tmp_path / "gemma.gguf"), "gemma2")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expect_refused(upcycle, tmp_path / "gemma.gguf", "unsupported architecture 'gemma2' (general.architecture", tmp_path)


def test_refuses_what_hf_cannot_express(upcycle, tmp_path):
    p = small_with(upcycle, tmp_path, "yarn", extra=lambda w: w.add_rope_scaling_type(gguf.RopeScalingType.YARN))
    expect_refused(upcycle, p, "rope scaling 'yarn' (key 'llama.rope.scaling.type')", tmp_path, "--skip-tokenizer")
    p = small_with(upcycle, tmp_path, "sentencepiece", extra=lambda w: w.add_tokenizer_model("llama"))
    expect_refused(upcycle, p, "tokenizer model 'llama' (key 'tokenizer.ggml.model')", tmp_path)
