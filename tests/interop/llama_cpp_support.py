"""llama.cpp (llama-cpp-python, compiled from source by scripts/setup) as a judge: load a GGUF with
its KV cache in float32, and decode greedily with no sampler."""
import llama_cpp
import numpy as np


def llama(path, vocab_only=False):
    return llama_cpp.Llama(str(path), n_ctx=256, n_threads=1, n_batch=256, logits_all=not vocab_only,
                           vocab_only=vocab_only, verbose=False, seed=0,
                           type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)


def greedy(model, ids, n):
    """Argmax decoding with llama.cpp's KV cache (no sampler: no penalties, no eos stop)."""
    model.reset()
    model.eval(ids)
    out = []
    for _ in range(n):
        nxt = int(np.argmax(model.scores[model.n_tokens - 1]))
        out.append(nxt)
        model.eval([nxt])
    return out
