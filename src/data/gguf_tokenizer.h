// A Hugging Face tokenizer.json + tokenizer_config.json rebuilt from a GGUF file's tokenizer
// metadata (tokenizer.ggml.*), for byte-level BPE vocabularies (tokenizer.ggml.model = "gpt2").
// The vocab is tokenizer.ggml.tokens in id order, the merges tokenizer.ggml.merges in rank order;
// tokens marked CONTROL (token_type 3) become special added tokens and USER_DEFINED (4) plain added
// tokens, as transformers' GGUF loader does. The pre-tokenizer comes from tokenizer.ggml.pre with
// the regexes llama.cpp (llama-vocab.cpp) uses for that name, spelled as the models' own HF
// tokenizer.json files spell them; ignore_merges and the BOS default follow llama.cpp's per-name
// flags, tokenizer.ggml.add_bos_token / add_eos_token override them. Refused with an Error naming
// the key: other tokenizer models (SentencePiece "llama", "t5", ...), unknown pre-tokenizer names,
// merges naming tokens outside the vocab, duplicate tokens, ids out of range, invalid UTF-8.
#pragma once

#include <string>

#include "io/gguf_file.h"

namespace upcycle::data {

struct GgufTokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};

bool gguf_has_tokenizer(const GgufFile& file);  // tokenizer.ggml.model is present
GgufTokenizerFiles gguf_tokenizer_files(const GgufFile& file);

}  // namespace upcycle::data
