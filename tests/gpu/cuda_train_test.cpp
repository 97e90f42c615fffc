// `upcycle train --backend cuda` as a user runs it (label gpu), on the tiny dense and MoE models of
// e2e/train_cli_test.cpp:
//   - exact resume on the GPU: 20 steps straight = 10 with --stop-after + 10 with --resume, checkpoint
//     files byte for byte and metrics record for record (the MoE run with jitter, expert bias, z-loss
//     and a Dirichlet prior that stops mid-run), which also proves the kernels are run-to-run
//     deterministic (no float atomics);
//   - 200 steps of the MoE: the loss curve stays within kCurveTol of cpu-bf16's step by step, and far
//     nearer cpu-bf16's curve than fp32 cpu's is (a cuda backend whose matmuls skipped the bf16
//     rounding, or used TF32, would sit at the fp32 distance).
// kCurveTol: cuda and cpu-bf16 share the precision contract and differ only in fp32 summation order
// (plus the rare bf16 rounding of an activation sitting on a rounding boundary). Measured on the host,
// with the flags below on a Mixtral of the same shape (`upcycle init --arch mixtral --preset tiny
// --vocab-size 11 --hidden-size 8 --layers 2 --heads 2 --kv-heads 1 --head-dim 4 --intermediate-size 12
// --experts 4 --top-k 2 --seed 7`, a noisy 11-cycle; loss 2.40 → 1.50): a summation-order change alone,
// cpu (fp32 OpenBLAS) against ref (double), moves the curve by at most 2.9e-7 in 200 steps; the bf16
// rounding, cpu-bf16 against cpu, by up to 2.9e-2. 5e-3 sits between the two: 17000× the first, a sixth
// of the second.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "support/test_support.h"
#include "support/train_run_support.h"
#include "support/train_test_support.h"

namespace upcycle {
namespace {

namespace fs = std::filesystem;

constexpr double kCurveTol = 5e-3;

class CudaTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir;
    test::write_train_inputs(dir_->path());
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::vector<std::string> args(bool moe, const fs::path& out, const std::string& backend,
                                       const std::string& steps) {
    std::vector<std::string> a = {"train", "--model", (*dir_ / (moe ? "moe" : "dense")).string(), "--data",
                                  (*dir_ / "data").string(), "--val", (*dir_ / "data").string(), "--out", out.string(),
                                  "--steps", steps, "--micro-batch", "2", "--seq-len", "8", "--lr", "1e-2",
                                  "--warmup", "3", "--save-every", "5", "--eval-every", "5", "--eval-tokens", "32",
                                  "--threads", "1", "--backend", backend};
    if (moe)
      for (const std::string& s : test::moe_resume_flags()) a.push_back(s);
    return a;
  }
  static test::ScratchDir* dir_;
};
test::ScratchDir* CudaTrain::dir_ = nullptr;

TEST_F(CudaTrain, TenStepsPlusResumeTenEqualTwentyDenseAndMoe) {
  ASSERT_TRUE(backend::backend_available(backend::BackendKind::kCuda)) << "no CUDA GPU is visible to this process";
  for (bool moe : {false, true}) {
    SCOPED_TRACE(moe ? "moe" : "dense");
    const fs::path straight = *dir_ / (moe ? "straight-moe" : "straight-dense");
    const fs::path split = *dir_ / (moe ? "split-moe" : "split-dense");
    auto r = test::run_upcycle(args(moe, straight, "cuda", "20"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = test::run_upcycle(test::with(args(moe, split, "cuda", "20"), "--stop-after", "10"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = test::run_upcycle({"train", "--out", split.string(), "--resume"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    test::expect_same_runs(straight, split, 20);
    const auto train = test::read_records(split, "train");
    ASSERT_EQ(train.size(), 20u);
    EXPECT_LT(train.back()["loss"].get<double>(), train.front()["loss"].get<double>());
  }
}

TEST_F(CudaTrain, MoeLossCurveFollowsCpuBf16For200Steps) {
  ASSERT_TRUE(backend::backend_available(backend::BackendKind::kCuda)) << "no CUDA GPU is visible to this process";
  std::map<std::string, std::vector<double>> curves;
  for (const char* backend : {"cpu", "cpu-bf16", "cuda"}) {
    const fs::path run = *dir_ / (std::string("curve-") + backend);
    auto a = args(true, run, backend, "200");
    a = test::with(test::with(a, "--save-every", "200"), "--eval-every", "0");
    const auto r = test::run_upcycle(a);
    ASSERT_EQ(r.exit_code, 0) << backend << ": " << r.err;
    for (const Json& rec : test::read_records(run, "train")) curves[backend].push_back(rec["loss"].get<double>());
    ASSERT_EQ(curves[backend].size(), 200u) << backend;
  }
  const auto& cuda = curves["cuda"];
  const auto& bf16 = curves["cpu-bf16"];
  double worst = 0, worst_f32 = 0;
  for (size_t s = 0; s < 200; ++s) {
    const double d = std::fabs(cuda[s] - bf16[s]);
    worst = std::max(worst, d);
    worst_f32 = std::max(worst_f32, std::fabs(curves["cpu"][s] - bf16[s]));
    EXPECT_LE(d, kCurveTol) << "step " << s + 1 << ": cuda " << cuda[s] << ", cpu-bf16 " << bf16[s];
  }
  std::printf("largest per-step |Δloss| over 200 steps: cuda vs cpu-bf16 %.3g, cpu vs cpu-bf16 %.3g\n", worst,
              worst_f32);
  EXPECT_LT(worst, 0.25 * worst_f32) << "cuda follows fp32 rather than bf16-rounded matmuls";
  EXPECT_LT(cuda.back(), 0.8 * cuda.front()) << "the cuda run did not learn";
}

}  // namespace
}  // namespace upcycle
