// Fuzz target (fuzz_targets.h): the bytes are a token shard file. TokenShard::open must reject a bad
// header or size with an Error; an opened shard must read every token and scan its ids without any
// other failure.
#include <string>
#include <vector>

#include "core/error.h"
#include "data/token_shard.h"
#include "../fuzz_targets.h"

namespace upcycle::fuzz {

int fuzz_token_shard(const uint8_t* data, size_t size) {
  const auto path = write_scratch("shard/train-00000.tok", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const data::TokenShard shard = data::TokenShard::open(path);
    if (shard.count() * shard.info().token_bytes + data::kShardHeaderBytes != size)
      fuzz_finding("opened shard's count does not match its file size");
    std::vector<int32_t> out(shard.count());
    shard.read(0, shard.count(), out.data());
    shard.check_ids(shard.info().vocab_size);
    for (const int32_t id : out)
      if (id < 0 || uint64_t(id) >= shard.info().vocab_size) fuzz_finding("check_ids passed an id outside the vocabulary");
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace upcycle::fuzz
