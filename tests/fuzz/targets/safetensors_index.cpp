// Fuzz target (fuzz_targets.h): the bytes are model.safetensors.index.json of a scratch checkpoint
// whose two valid shards hold "a" (F32 [2]) and "b" (F32 [3]). Checkpoint::open must reject a bad
// index with an Error; an accepted one must reference both tensors, each once, in the shard it names.
#include <string>

#include "core/error.h"
#include "io/checkpoint.h"
#include "../fuzz_targets.h"

namespace upcycle::fuzz {

namespace {

std::string shard_bytes(const std::string& name, int n) {
  std::string header = "{\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(n) +
                       "],\"data_offsets\":[0," + std::to_string(4 * n) + "]}}";
  while (header.size() % 8 != 0) header += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return out + header + std::string(size_t(4 * n), '\0');
}

}  // namespace

int fuzz_safetensors_index(const uint8_t* data, size_t size) {
  static const bool shards_written = [] {
    write_scratch("index/model-00001-of-00002.safetensors", shard_bytes("a", 2));
    write_scratch("index/model-00002-of-00002.safetensors", shard_bytes("b", 3));
    return true;
  }();
  (void)shards_written;
  write_scratch("index/model.safetensors.index.json", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const Checkpoint ckpt = Checkpoint::open(scratch_dir() / "index");
    if (ckpt.tensors().size() != 2 || ckpt.find("a") == nullptr || ckpt.find("b") == nullptr)
      fuzz_finding("accepted index does not list exactly the shards' tensors");
    if (ckpt.total_tensor_bytes() != 20) fuzz_finding("accepted index's tensors do not sum to the shards' bytes");
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace upcycle::fuzz
