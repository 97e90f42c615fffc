// Learning-rate sweeps in study specs (study/study_spec.h, docs/study.md "Learning-rate sweeps"): an
// `lr:` list at the study or variant level expands into one variant per value, named
// "<variant>/lr-<lr>" with runs in runs/<variant>/lr-<lr>[/seed-<S>]; bad values are one-line errors
// naming the spec file and the key; a scalar `lr:` changes nothing; a from-scratch variant takes the
// pretraining schedule unless it sets its own.
#include <gtest/gtest.h>

#include "core/error.h"
#include "study/study_runs.h"
#include "study/study_spec.h"
#include "support/test_support.h"

namespace upcycle {
namespace {

namespace fs = std::filesystem;

class StudyLrSweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "data" / "a");
    fs::create_directories(dir_ / "dense");
  }
  fs::path write(const std::string& yaml) {
    const fs::path file = dir_ / "spec.yaml";
    test::write_bytes(file, yaml);
    return file;
  }
  study::StudySpec parse(const std::string& yaml) { return study::parse_study_spec(write(yaml)); }
  void expect_refused(const std::string& yaml, const std::string& part) {
    const fs::path file = write(yaml);
    try {
      study::parse_study_spec(file);
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line";
      EXPECT_EQ(e.file(), fs::canonical(file).string());
    }
  }
  static std::vector<std::string> names(const study::StudySpec& s) {
    std::vector<std::string> out;
    for (const auto& v : s.variants) out.push_back(v.name);
    return out;
  }
  test::ScratchDir dir_;
  const std::string given_ = "data: [data/a]\ndense: {checkpoint: dense, sunk_flops: 1e12}\n";
  const std::string pretrain_ = "data: [data/a]\ndense: {init: {arch: llama, preset: tiny}, pretrain_steps: 40}\n";
};

TEST_F(StudyLrSweepTest, StudyListSweepsEveryVariantInOrder) {
  const study::StudySpec s = parse(given_ +
                                   "train: {micro-batch: 2, lr: [5e-4, 1e-3, 0.002], warmup: 3}\n"
                                   "variants:\n  - name: dense-continuation\n  - name: up\n    convert: {experts: 4}\n");
  EXPECT_EQ(names(s), (std::vector<std::string>{"dense-continuation/lr-0.0005", "dense-continuation/lr-0.001",
                                                 "dense-continuation/lr-0.002", "up/lr-0.0005", "up/lr-0.001", "up/lr-0.002"}));
  const study::VariantSpec& v = s.variants[4];
  EXPECT_EQ(v.sweep, "up");
  EXPECT_EQ(v.lr, "0.001");
  // The study's flag order is kept, --lr replaced in place by the run's single value.
  EXPECT_EQ(study::flags_to_args(study::run_train_flags(s, v, std::nullopt)),
            (std::vector<std::string>{"--micro-batch", "2", "--lr", "0.001", "--warmup", "3"}));
  EXPECT_EQ(study::run_dir(v.name, std::nullopt), "runs/up/lr-0.001");
  EXPECT_EQ(study::model_dir(v.name, 7), "models/up/lr-0.001/seed-7");
}

TEST_F(StudyLrSweepTest, VariantListAndScalarOverrideTheStudy) {
  const study::StudySpec s = parse(given_ +
                                   "train: {lr: 1e-3}\n"
                                   "seeds: [1, 2]\n"
                                   "variants:\n  - name: base\n"
                                   "  - name: up\n    convert: {experts: 4}\n    train: {lr: [1e-3, 3e-3]}\n");
  EXPECT_EQ(names(s), (std::vector<std::string>{"base", "up/lr-0.001", "up/lr-0.003"}));
  EXPECT_TRUE(s.variants[0].sweep.empty());  // a scalar lr: no sweep, the layout of before
  EXPECT_EQ(study::run_dir("base", 2), "runs/base/seed-2");
  // The plan: every (variant, lr) once per seed.
  EXPECT_EQ(s.variants.size() * study::run_seeds(s).size(), 6u);
  EXPECT_EQ(study::flags_to_args(study::run_train_flags(s, s.variants[2], 2)),
            (std::vector<std::string>{"--lr", "0.003", "--seed", "2"}));

  const study::StudySpec scalar = parse(given_ + "train: {lr: [1e-3, 2e-3]}\nvariants:\n  - name: up\n    train: {lr: 5e-4}\n");
  EXPECT_EQ(names(scalar), (std::vector<std::string>{"up"}));
  EXPECT_EQ(study::flags_to_args(study::run_train_flags(scalar, scalar.variants[0], std::nullopt)),
            (std::vector<std::string>{"--lr", "5e-4"}));
}

TEST_F(StudyLrSweepTest, OneElementListIsASweepOfOne) {
  const study::StudySpec s = parse(given_ + "variants:\n  - name: up\n    train: {lr: [1e-3]}\n");
  EXPECT_EQ(names(s), (std::vector<std::string>{"up/lr-0.001"}));  // adding values later renames nothing
}

TEST_F(StudyLrSweepTest, CanonicalTextsReadBack) {
  EXPECT_EQ(study::lr_text(5e-4), "0.0005");
  EXPECT_EQ(study::lr_text(1e-5), "1e-05");
  EXPECT_EQ(study::lr_text(1.2345678e-3), "0.0012345678000000001");  // %g would round it: every digit
  EXPECT_EQ(std::stod(study::lr_text(1.2345678e-3)), 1.2345678e-3);
  EXPECT_EQ(study::lr_dir_name("0.002"), "lr-0.002");
}

TEST_F(StudyLrSweepTest, FromScratchTakesThePretrainingScheduleUnlessItSetsItsOwn) {
  const std::string head = pretrain_ +
                           "train: {micro-batch: 2, lr: 1e-3, min-lr: 1e-4, warmup: 10, weight-decay: 0.1}\n"
                           "pretrain: {lr: 2e-3, warmup: 20, seed: 5, schedule: cosine}\n";
  const study::StudySpec s = parse(head +
                                   "variants:\n  - name: up\n    convert: {experts: 4}\n"
                                   "  - name: scratch\n    convert: {experts: 4, from-scratch: true}\n"
                                   "  - name: pinned\n    convert: {experts: 4, from-scratch: true}\n    train: {lr: 1e-3, warmup: 10}\n");
  const auto args = [&](size_t i) { return study::flags_to_args(study::run_train_flags(s, s.variants[i], std::nullopt)); };
  EXPECT_EQ(args(0), (std::vector<std::string>{"--micro-batch", "2", "--lr", "1e-3", "--min-lr", "1e-4", "--warmup", "10",
                                               "--weight-decay", "0.1"}));
  // lr, warmup and schedule from `pretrain:`; its seed is the pretraining's own, not a schedule flag.
  EXPECT_EQ(args(1), (std::vector<std::string>{"--micro-batch", "2", "--lr", "2e-3", "--min-lr", "1e-4", "--warmup", "20",
                                               "--weight-decay", "0.1", "--schedule", "cosine"}));
  EXPECT_EQ(args(2), (std::vector<std::string>{"--micro-batch", "2", "--lr", "1e-3", "--min-lr", "1e-4", "--warmup", "10",
                                               "--weight-decay", "0.1", "--schedule", "cosine"}));
  EXPECT_TRUE(study::trains_from_scratch(s.variants[1]));
  EXPECT_FALSE(study::trains_from_scratch(s.variants[0]));

  // A study-level sweep leaves the from-scratch variant on the pretraining's single lr; its own list sweeps it.
  const study::StudySpec swept = parse(pretrain_ +
                                       "train: {lr: [1e-3, 2e-3]}\npretrain: {lr: 4e-3}\n"
                                       "variants:\n  - name: scratch\n    convert: {from-scratch: true}\n"
                                       "  - name: scratch2\n    convert: {from-scratch: true}\n    train: {lr: [4e-3, 8e-3]}\n");
  EXPECT_EQ(names(swept), (std::vector<std::string>{"scratch", "scratch2/lr-0.004", "scratch2/lr-0.008"}));
}

// experiments/demo.yaml pins its from-scratch variant to the variants' schedule, so its commands (and
// results in docs/results.md) are those of before the pretraining-schedule default: the same flags as
// the upcycled variant, which has no `train:` of its own.
TEST_F(StudyLrSweepTest, DemoSpecKeepsItsFromScratchCommands) {
  const fs::path experiments = fs::path(UPCYCLE_TEST_DATA_DIR) / ".." / ".." / "experiments";
  const fs::path copy = dir_ / "experiments" / "demo.yaml";
  fs::create_directories(copy.parent_path());
  fs::copy_file(experiments / "demo.yaml", copy);
  for (const char* d : {"prose", "code", "dict"}) fs::create_directories(dir_ / "out" / "demo" / "data" / d);
  fs::create_directories(dir_ / "out" / "demo" / "tokenizer");
  test::write_bytes(dir_ / "out" / "demo" / "tokenizer" / "tokenizer.json", "{}");
  const study::StudySpec s = study::parse_study_spec(copy);
  const auto flags = [&](const std::string& name) {
    for (const auto& v : s.variants)
      if (v.name == name) return study::flags_to_args(study::run_train_flags(s, v, 2));
    ADD_FAILURE() << name;
    return std::vector<std::string>{};
  };
  EXPECT_EQ(flags("moe-from-scratch"), flags("upcycle"));
  EXPECT_EQ(flags("upcycle"), (std::vector<std::string>{"--micro-batch", "8", "--seq-len", "128", "--lr", "1e-3", "--min-lr",
                                                        "2e-4", "--warmup", "10", "--weight-decay", "0.1", "--eval-tokens",
                                                        "8192", "--log-every", "40", "--seed", "2"}));
}

TEST_F(StudyLrSweepTest, RefusesBadLists) {
  const std::string v = "variants:\n  - name: up\n";
  expect_refused(given_ + "train: {lr: [1e-3, abc]}\n" + v, "train.lr[1]: expected a positive learning rate, got 'abc'");
  expect_refused(given_ + "train: {lr: [1e-3, -2e-3]}\n" + v, "train.lr[1]: expected a positive learning rate");
  expect_refused(given_ + "train: {lr: [1e-3, 0]}\n" + v, "train.lr[1]");
  expect_refused(given_ + "train: {lr: []}\n" + v, "train.lr: empty list");
  expect_refused(given_ + "train: {lr: [5e-4, 0.0005]}\n" + v, "train.lr: learning rate 0.0005 is listed twice");
  expect_refused(given_ + "variants:\n  - name: up\n    train: {lr: [1e-3, x]}\n",
                 "variants.up.train.lr[1]: expected a positive learning rate, got 'x'");
  expect_refused(pretrain_ + "pretrain: {lr: [1e-3, 2e-3]}\n" + v, "pretrain.lr: one value");
  expect_refused(pretrain_ + "train: {lr: [1e-3, 2e-3]}\n" + v, "train.lr: a sweep for the variants");
}

}  // namespace
}  // namespace upcycle
