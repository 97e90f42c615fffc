// A Hugging Face checkpoint directory's tensors: `model.safetensors`, or shards listed by
// `model.safetensors.index.json` (`{"metadata": {"total_size": …}, "weight_map": {name: shard}}`).
// Like transformers, a single `model.safetensors` wins over an index. Opening validates every
// shard's header and the index against the shards (shard missing, tensor named in the index but
// absent from its shard, tensor in a shard but not in the index, a tensor in two shards) without
// reading tensor data.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.h"

namespace upcycle {

inline constexpr const char* kSingleFileName = "model.safetensors";
inline constexpr const char* kIndexFileName = "model.safetensors.index.json";

struct TensorRef {
  const SafetensorsFile* file = nullptr;
  const TensorInfo* info = nullptr;
};

class Checkpoint {
 public:
  // Throws Error naming the directory when it holds no safetensors weights at all.
  static Checkpoint open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  bool sharded() const { return sharded_; }
  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  const TensorRef* find(std::string_view name) const;  // nullptr when absent
  const std::map<std::string, TensorRef, std::less<>>& tensors() const { return tensors_; }  // sorted by name
  uint64_t total_tensor_bytes() const;

 private:
  std::filesystem::path dir_;
  bool sharded_ = false;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, TensorRef, std::less<>> tensors_;
};

// Copies a checkpoint's side files (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
// generation_config.json, chat templates, vocab/merges .txt, sentencepiece .model, .tiktoken: every
// regular *.json/*.txt/*.model/*.jinja/*.tiktoken except config.json, the safetensors index and hidden
// files) byte for byte from `from` into `to`. Writers of new checkpoints call it, then write their own
// config.json and weights.
void copy_side_files(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace upcycle
