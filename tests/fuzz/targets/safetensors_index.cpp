// Fuzz target (fuzz_targets.h): the bytes are model.safetensors.index.json of a scratch checkpoint
// whose two valid shards hold "a" (F32 [2]) and "b" (F32 [3]). Checkpoint::open must reject a bad
// index with an Error; an accepted one lists exactly the tensors of the shards it names, each once.
// An index may leave a shard of the directory unnamed: transformers reads only weight_map too, and a
// model missing a tensor fails later naming it (libFuzzer found such an index after 360 752 runs when
// this target still required both tensors; tests/fuzz/corpus/safetensors_index/regression_one_shard).
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
    const bool has_a = ckpt.find("a") != nullptr, has_b = ckpt.find("b") != nullptr;
    if (ckpt.tensors().size() != size_t(has_a) + size_t(has_b) || ckpt.tensors().empty())
      fuzz_finding("accepted index does not list exactly the named shards' tensors");
    if (ckpt.total_tensor_bytes() != (has_a ? 8u : 0u) + (has_b ? 12u : 0u))
      fuzz_finding("accepted index's tensors do not sum to the shards' bytes");
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace upcycle::fuzz
