"""llama.cpp (llama-cpp-python) generates from a GGUF file: the upcycled, trained MoE as exported.

usage: llama_cpp_generate.py GGUF PROMPT --max-new-tokens N

The prompt is tokenized by llama.cpp from the GGUF's own vocabulary (special tokens such as
<|im_start|> parsed), then decoded greedily (temperature 0) until N tokens or an end-of-generation
token. Prints the model's expert count as llama.cpp read it and the continuation verbatim.
"""
import argparse
import sys

import llama_cpp


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gguf")
    parser.add_argument("prompt")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    a = parser.parse_args()

    model = llama_cpp.Llama(a.gguf, n_ctx=512, n_threads=2, verbose=False, seed=0)
    experts = model.metadata.get("llama.expert_count", "none")
    ids = model.tokenize(a.prompt.encode(), add_bos=False, special=True)
    out = model.create_completion(ids, max_tokens=a.max_new_tokens, temperature=0.0)
    text = out["choices"][0]["text"]
    print(f"llama.cpp read {a.gguf}: {experts} experts per layer, "
          f"{model.metadata.get('llama.expert_used_count', 'none')} used; greedy continuation "
          f"({out['usage']['completion_tokens']} tokens):")
    print(text)
    if not text.strip():
        print("llama_cpp_generate: FAIL: llama.cpp generated no text", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
