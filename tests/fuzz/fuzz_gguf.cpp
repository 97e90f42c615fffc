// libFuzzer target for the GGUF reader, the metadata → config mapping and the dequantisers. The input
// is a whole GGUF file (written to a memfd, which GgufFile::open maps like any file).
// upcycle::Error is the expected outcome for bad input; any other exception, a crash, a sanitizer
// report or an allocation beyond libFuzzer's -rss_limit_mb is a finding. A file that opens is then
// read through every accessor, planned as a model, and its small tensors are dequantised.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/ggml_dequantize.h"
#include "io/gguf_file.h"
#include "io/gguf_model.h"

namespace {

void exercise(const upcycle::GgufFile& f) {
  for (const std::string& key : f.keys()) {
    try { f.describe(key); } catch (const upcycle::Error&) {}
    try { f.string_array(key); } catch (const upcycle::Error&) {}
    try { f.int_array(key); } catch (const upcycle::Error&) {}
  }
  for (const auto& t : f.tensors()) {
    const upcycle::GgmlTypeInfo& info = upcycle::ggml_type_info(t.type);
    if (!info.dequantizable || t.nbytes > (1u << 20)) continue;
    std::vector<std::byte> raw(t.nbytes);
    f.read_tensor_bytes(t, 0, t.nbytes, raw.data());
    std::vector<float> out(t.numel());
    upcycle::dequantize_blocks(t.type, raw.data(), out.data(), t.numel() / info.block_size);
  }
  try { upcycle::plan_gguf_import(f); } catch (const upcycle::Error&) {}
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd_create("fuzz.gguf", 0);
  if (fd < 0) return 0;
  size_t written = 0;
  while (written < size) {
    const ssize_t n = write(fd, data + written, size - written);
    if (n <= 0) break;
    written += size_t(n);
  }
  try {
    exercise(upcycle::GgufFile::open("/proc/self/fd/" + std::to_string(fd)));
  } catch (const upcycle::Error&) {
  }
  close(fd);
  return 0;
}
