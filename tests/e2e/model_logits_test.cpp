// `upcycle logits` end to end: the .npy has numpy's exact v1.0 header (64-byte aligned data) and
// holds the in-process forward's logits; bad token ids, missing flags and an unwritable --out
// give one-line errors, exit 2 and leave no file (nor a temp file) behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "backend/backend.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "model/parameters.h"
#include "model/transformer.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

class ModelLogitsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = test::run_upcycle({"init", "--arch", "qwen2", "--preset", "tiny", "--dtype", "f32", "--seed", "2",
                                (dir_ / "m").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::vector<float> in_process(const std::vector<int32_t>& ids, backend::BackendKind kind) {
    ModelConfig config = read_model_config(dir_ / "m");
    auto be = backend::make_backend(kind);
    model::Transformer m(config, *be);
    Checkpoint ckpt = Checkpoint::open(dir_ / "m");
    model::load_parameters(m.params(), ckpt, model::checked_weight_table(config, ckpt));
    const float* l = m.forward(ids.data(), 1, int64_t(ids.size()));
    return std::vector<float>(l, l + ids.size() * size_t(config.vocab_size));
  }
  void expect_user_error(const test::RunResult& r, const std::string& needle) {
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.err.rfind("upcycle: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  }
  // No output and no stray temp file in the scratch directory.
  void expect_no_output() {
    for (const auto& e : fs::directory_iterator(dir_.path()))
      EXPECT_EQ(e.path().filename(), "m") << "left behind: " << e.path();
  }
  test::ScratchDir dir_;
};

TEST_F(ModelLogitsCli, WritesNpyMatchingInProcessForward) {
  const std::vector<int32_t> ids = {1, 15, 27, 3, 511};
  for (std::string backend : {"ref", "cpu", "cpu-bf16"}) {
    const fs::path out = dir_ / ("logits_" + backend + ".npy");
    auto r = test::run_upcycle(
        {"logits", (dir_ / "m").string(), "--tokens", "1 15 27 3 511", "--out", out.string(), "--backend", backend});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string bytes = test::read_bytes(out);
    // numpy: magic, v1.0, u16 LE header length, dict padded with spaces to a 64-byte boundary, '\n'.
    std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 512), }";
    const size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
    dict += std::string(total - 10 - dict.size() - 1, ' ') + "\n";
    const std::string header = std::string("\x93NUMPY\x01\x00", 8) + char(dict.size() & 0xff) + char(dict.size() >> 8) + dict;
    ASSERT_EQ(bytes.substr(0, header.size()), header);
    EXPECT_EQ(header.size() % 64, 0u);
    ASSERT_EQ(bytes.size(), header.size() + 5 * 512 * sizeof(float));
    std::vector<float> got(5 * 512);
    std::memcpy(got.data(), bytes.data() + header.size(), got.size() * sizeof(float));
    auto want = in_process(ids, backend::backend_kind_from_name(backend));
    EXPECT_EQ(got, want) << backend;  // same code, same inputs: bitwise
    double mx = 0;
    for (float x : got) mx = std::max(mx, double(std::fabs(x)));
    EXPECT_GT(mx, 0.01);
  }
}

TEST_F(ModelLogitsCli, OutOfRangeTokenIsOneLineError) {
  auto r = test::run_upcycle({"logits", (dir_ / "m").string(), "--tokens", "1 512", "--out", (dir_ / "x.npy").string()});
  expect_user_error(r, "token id 512");
  EXPECT_NE(r.err.find("vocab_size is 512"), std::string::npos) << r.err;
  r = test::run_upcycle({"logits", (dir_ / "m").string(), "--tokens", "-3", "--out", (dir_ / "x.npy").string()});
  expect_user_error(r, "token id -3");
  r = test::run_upcycle({"logits", (dir_ / "m").string(), "--tokens", "1 x2", "--out", (dir_ / "x.npy").string()});
  expect_user_error(r, "'x2' is not an integer");
  expect_no_output();
}

TEST_F(ModelLogitsCli, MissingFlagsAreOneLineErrors) {
  auto r = test::run_upcycle({"logits", (dir_ / "m").string(), "--out", (dir_ / "x.npy").string()});
  expect_user_error(r, "missing --tokens");
  r = test::run_upcycle({"logits", (dir_ / "m").string(), "--tokens", "1 2"});
  expect_user_error(r, "missing --out");
  r = test::run_upcycle({"logits", (dir_ / "m").string(), "--tokens", " ", "--out", (dir_ / "x.npy").string()});
  expect_user_error(r, "--tokens is empty");
  expect_no_output();
}

TEST_F(ModelLogitsCli, UnwritableOutIsOneLineErrorWithoutFile) {
  test::write_bytes(dir_ / "file", "x");
  auto r = test::run_upcycle({"logits", (dir_ / "m").string(), "--tokens", "1 2", "--out", (dir_ / "file" / "x.npy").string()});
  expect_user_error(r, (dir_ / "file" / "x.npy").string());
  fs::create_directory(dir_ / "isdir");  // rename onto a directory fails after the temp file exists
  r = test::run_upcycle({"logits", (dir_ / "m").string(), "--tokens", "1 2", "--out", (dir_ / "isdir").string()});
  expect_user_error(r, (dir_ / "isdir").string());
  fs::remove(dir_ / "file");
  fs::remove(dir_ / "isdir");
  expect_no_output();
}

TEST_F(ModelLogitsCli, OutputTooLargeForFileLimitLeavesNothing) {
  // A 2 KB file-size limit makes the data write fail with EFBIG (a full disk, in effect).
  test::RunLimits limits;
  limits.file_size = 2048;
  auto r = test::run_upcycle({"logits", (dir_ / "m").string(), "--tokens", "1 2", "--out", (dir_ / "x.npy").string()},
                             limits);
  expect_user_error(r, "x.npy");
  expect_no_output();
}

}  // namespace
}  // namespace upcycle
