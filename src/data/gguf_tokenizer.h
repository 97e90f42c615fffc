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
// Export goes the other way (gguf_tokenizer_export.cpp): a byte-level BPE tokenizer.json whose
// pre-tokenizer llama.cpp has a name for becomes tokenizer.ggml.* the way convert_hf_to_gguf.py
// writes it.
#pragma once

#include <filesystem>
#include <string>

#include "io/gguf_file.h"
#include "io/gguf_writer.h"

namespace upcycle::data {

struct GgufTokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};

bool gguf_has_tokenizer(const GgufFile& file);  // tokenizer.ggml.model is present
GgufTokenizerFiles gguf_tokenizer_files(const GgufFile& file);

// Adds tokenizer.ggml.* and tokenizer.chat_template for model_dir/tokenizer.json (+ tokenizer_config.json,
// config.json's bos/eos ids as a fallback) to `writer`: `vocab_size` tokens (the embedding's rows; ids
// without a token become "[PADn]", type UNUSED, as the converter writes them). Error naming the file
// for a tokenizer GGUF cannot describe (not byte-level BPE, a pre-tokenizer llama.cpp has no name for,
// a normalizer other than NFC, more tokens than the embedding has rows).
void add_gguf_tokenizer_metadata(const std::filesystem::path& model_dir, int64_t vocab_size, GgufWriter& writer);

}  // namespace upcycle::data
