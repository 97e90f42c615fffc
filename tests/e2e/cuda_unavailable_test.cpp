// `--backend cuda` where it cannot run (label fast, so CI checks it). In a CUDA build on a machine that
// sees no GPU — forced here with CUDA_VISIBLE_DEVICES="" so the test means the same on a GPU machine —
// train and logits stop with one line naming the reason, exit 2, and write nothing (no run directory,
// no .npy). In a build without the cuda backend, "cuda" is refused like any other unknown --backend value.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "support/test_support.h"
#include "support/train_run_support.h"
#include "support/train_test_support.h"

namespace upcycle {
namespace {

namespace fs = std::filesystem;

#ifdef UPCYCLE_HAVE_CUDA
const std::string kPrefix = "upcycle: error: no CUDA GPU is visible to this process (cudaGetDeviceCount: ";
#else
const std::string kPrefix = "upcycle: error: invalid value 'cuda' for --backend: expected one of cpu|cpu-bf16|ref";
#endif

// Hides every GPU from this process and the upcycle it runs, for the scope's lifetime.
class NoVisibleGpu {
 public:
  NoVisibleGpu() {
    if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES")) saved_ = v;
    setenv("CUDA_VISIBLE_DEVICES", "", 1);
  }
  ~NoVisibleGpu() {
    if (saved_) {
      setenv("CUDA_VISIBLE_DEVICES", saved_->c_str(), 1);
    } else {
      unsetenv("CUDA_VISIBLE_DEVICES");
    }
  }

 private:
  std::optional<std::string> saved_;
};

void expect_one_line_error(const test::RunResult& r) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.rfind(kPrefix, 0), 0u) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
#ifdef UPCYCLE_HAVE_CUDA
  EXPECT_EQ(r.err.substr(r.err.size() - 2), ")\n") << r.err;
#endif
}

TEST(CudaUnavailable, TrainAndLogitsFailWithOneLineAndWriteNothing) {
  test::ScratchDir dir;
  test::write_tiny_model(dir / "moe", test::tiny_train_config(true), 7);
  test::write_dataset(dir / "data", "web", test::noisy_cycle_ids(300), {}, 11);
  NoVisibleGpu hide;
#ifdef UPCYCLE_HAVE_CUDA
  EXPECT_FALSE(backend::backend_available(backend::BackendKind::kCuda));
#endif
  auto r = test::run_upcycle({"train", "--model", (dir / "moe").string(), "--data", (dir / "data").string(), "--out",
                              (dir / "run").string(), "--steps", "2", "--micro-batch", "1", "--seq-len", "8",
                              "--backend", "cuda"});
  expect_one_line_error(r);
  EXPECT_FALSE(fs::exists(dir / "run"));
  r = test::run_upcycle({"logits", (dir / "moe").string(), "--tokens", "1 2 3", "--out", (dir / "l.npy").string(),
                         "--backend", "cuda"});
  expect_one_line_error(r);
  EXPECT_FALSE(fs::exists(dir / "l.npy"));
  // The host backends are unaffected by the hidden GPU.
  EXPECT_TRUE(backend::backend_available(backend::BackendKind::kCpuBF16));
}

}  // namespace
}  // namespace upcycle
