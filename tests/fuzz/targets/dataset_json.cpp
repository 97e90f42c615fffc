// Fuzz target (fuzz_targets.h): the bytes are dataset.json of a scratch dataset directory holding one
// valid shard "train-00000.tok" (5 tokens, vocab 300). Reading and opening both splits must reject a
// bad manifest with an Error; an opened split must read back all its tokens inside the vocabulary.
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/token_dataset.h"
#include "../fuzz_targets.h"

namespace upcycle::fuzz {

int fuzz_dataset_json(const uint8_t* data, size_t size) {
  static const bool shard_written = [] {
    const std::vector<uint32_t> ids = {1, 2, 3, 299, 0};
    std::filesystem::create_directories(scratch_dir() / "dataset");
    data::write_token_shard(scratch_dir() / "dataset" / "train-00000.tok", ids, 300);
    return true;
  }();
  (void)shard_written;
  write_scratch("dataset/dataset.json", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const data::DatasetManifest m = data::read_dataset_manifest(scratch_dir() / "dataset");
    for (const auto split : {data::Split::kTrain, data::Split::kVal}) {
      const data::TokenDataset d = data::open_split(m, split);
      if (d.tokens == 0 || d.tokens > 1000) continue;
      std::vector<int32_t> out(d.tokens);
      d.read(0, d.tokens, out.data());
      d.check_ids(m.vocab_size);
    }
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace upcycle::fuzz
