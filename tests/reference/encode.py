"""Reference encodings from the real Hugging Face tokenizers for upcycle's tokenizer parity tests.

Run with the reference environment's interpreter (UPCYCLE_PYTHON, built by scripts/setup):
  python encode.py TOKENIZER_JSON < texts.json        -> one JSON object on stdout:
      {"ids": [[...]], "ids_special": [[...]], "decoded": [...], "decoded_skip": [...]}
      ids: encode(text, add_special_tokens=False); ids_special: add_special_tokens=True;
      decoded / decoded_skip: decode(ids_special, skip_special_tokens=False / True).
      The `tokenizers` package: HF's Rust library itself.
  python encode.py --transformers DIR < texts.json    -> the same object from
      transformers.AutoTokenizer.from_pretrained(DIR): what a user of transformers gets from the
      tokenizer.json + tokenizer_config.json in DIR (special tokens, class choice, post-processing),
      plus "eos_token", "eos_token_id", "bos_token_id", "vocab_size" and "tokenizer_class".
  python encode.py --bench TOKENIZER_JSON TEXT_FILE   -> "hf_mb_per_s <number> tokens <count>":
      one encode of the whole file after one warm-up encode, on one thread.
Texts are JSON strings (valid Unicode). Errors: a one-line message on stderr, exit 1.
"""
import json
import os
import sys
import time


def encode_all(encode, decode, texts):
    out = {"ids": [], "ids_special": [], "decoded": [], "decoded_skip": []}
    for text in texts:
        out["ids"].append(encode(text, False))
        special = encode(text, True)
        out["ids_special"].append(special)
        out["decoded"].append(decode(special, False))
        out["decoded_skip"].append(decode(special, True))
    return out


def with_tokenizers(path, texts):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    return encode_all(
        lambda t, special: tok.encode(t, add_special_tokens=special).ids,
        lambda ids, skip: tok.decode(ids, skip_special_tokens=skip),
        texts,
    )


def with_transformers(directory, texts):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory: never ask the Hub
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(directory)
    out = encode_all(
        lambda t, special: tok.encode(t, add_special_tokens=special),
        lambda ids, skip: tok.decode(ids, skip_special_tokens=skip),
        texts,
    )
    out.update(eos_token=tok.eos_token, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
               vocab_size=len(tok), tokenizer_class=type(tok).__name__)
    return out


def bench(path, text_file):
    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # HF parallelises batches only; keep it fair
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    with open(text_file, encoding="utf-8") as f:
        text = f.read()
    tok.encode(text, add_special_tokens=False)
    start = time.perf_counter()
    enc = tok.encode(text, add_special_tokens=False)
    seconds = time.perf_counter() - start
    print(f"hf_mb_per_s {len(text.encode('utf-8')) / 1e6 / seconds:.3f} tokens {len(enc.ids)}")


def main(argv):
    if len(argv) == 3 and argv[0] == "--bench":
        bench(argv[1], argv[2])
        return
    if len(argv) == 2 and argv[0] == "--transformers":
        result = with_transformers(argv[1], json.loads(sys.stdin.buffer.read().decode("utf-8")))
    elif len(argv) == 1:
        result = with_tokenizers(argv[0], json.loads(sys.stdin.buffer.read().decode("utf-8")))
    else:
        raise SystemExit("usage: encode.py [--transformers DIR | TOKENIZER_JSON | --bench TOKENIZER_JSON TEXT_FILE]")
    sys.stdout.write(json.dumps(result) + "\n")  # ASCII with \u escapes: no locale involved


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as e:  # one line, not a traceback: the C++ test prints it next to its own message
        print(f"encode.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
