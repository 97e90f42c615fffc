// Study specs (study/study_spec.h): a complete spec read back field by field, flags turned into
// arguments in order, `seeds:` and every refusal naming the key; the run names and per-seed flags
// (study/study_runs.h); the plan arithmetic (study/study_plan.h) on hand-computed cases.
#include <gtest/gtest.h>

#include "core/error.h"
#include "study/study_plan.h"
#include "study/study_runs.h"
#include "study/study_spec.h"
#include "support/expect_error.h"
#include "support/test_support.h"

namespace upcycle {
namespace {

namespace fs = std::filesystem;

class StudySpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "data" / "a");
    fs::create_directories(dir_ / "data" / "b");
    fs::create_directories(dir_ / "dense");
  }
  fs::path write(const std::string& yaml) {
    const fs::path file = dir_ / "spec.yaml";
    test::write_bytes(file, yaml);
    return file;
  }
  // Expects parse_study_spec to refuse `yaml` with a message containing `part`, naming the spec file.
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
  test::ScratchDir dir_;
  const std::string pretrain_ = "data: [data/a, data/b:0.5]\ndense: {init: {arch: llama, preset: tiny}, pretrain_steps: 40, keep_steps: [20]}\n";
};

TEST_F(StudySpecTest, ReadsEveryField) {
  const fs::path file = write(
      "name: s1\n"
      "data: [data/a, data/b:0.5]\n"
      "val: [data/a]\n"
      "dense:\n  init: {arch: llama, preset: tiny, dtype: f32}\n  pretrain_steps: 40\n  keep_steps: [10, 20]\n"
      "train: {micro-batch: 2, seq_len: 16, lr: 1e-3}\n"
      "pretrain: {warmup: 5}\n"
      "extra_compute: 0.5\nevals: 3\nanalysis_tokens: 64\n"
      "variants:\n"
      "  - name: dense-continuation\n"
      "  - name: up\n    description: copies\n    convert: {experts: 4, from-scratch: true, verify: false}\n"
      "    train: {capacity-factor: 1.25}\n    from: 20\n    extra_compute: 2\n");
  const study::StudySpec s = study::parse_study_spec(file);
  const fs::path root = fs::canonical(dir_.path());
  EXPECT_EQ(s.name, "s1");
  ASSERT_EQ(s.data.size(), 2u);
  EXPECT_EQ(s.data[0], (root / "data" / "a").string());
  EXPECT_EQ(s.data[1], (root / "data" / "b").string() + ":0.5");
  ASSERT_EQ(s.val.size(), 1u);
  EXPECT_EQ(s.val[0], root / "data" / "a");
  EXPECT_TRUE(s.dense.pretrains());
  EXPECT_EQ(s.dense.pretrain_steps, 40);
  EXPECT_EQ(s.dense.keep_steps, (std::vector<int64_t>{10, 20}));
  EXPECT_EQ(study::flags_to_args(s.dense.init),
            (std::vector<std::string>{"--arch", "llama", "--preset", "tiny", "--dtype", "f32"}));
  EXPECT_EQ(study::flags_to_args(s.train),
            (std::vector<std::string>{"--micro-batch", "2", "--seq-len", "16", "--lr", "1e-3"}));  // _ → -, text kept
  EXPECT_EQ(study::flags_to_args(s.pretrain), (std::vector<std::string>{"--warmup", "5"}));
  EXPECT_DOUBLE_EQ(s.extra_compute, 0.5);
  EXPECT_EQ(s.evals, 3);
  EXPECT_EQ(s.analysis_tokens, 64);
  ASSERT_EQ(s.variants.size(), 2u);
  EXPECT_FALSE(s.variants[0].convert.has_value());  // dense continuation
  EXPECT_FALSE(s.variants[0].from.has_value());
  const study::VariantSpec& up = s.variants[1];
  EXPECT_EQ(up.description, "copies");
  ASSERT_TRUE(up.convert.has_value());
  // true → a bare flag, false → omitted.
  EXPECT_EQ(study::flags_to_args(*up.convert), (std::vector<std::string>{"--experts", "4", "--from-scratch"}));
  EXPECT_EQ(study::flags_to_args(up.train), (std::vector<std::string>{"--capacity-factor", "1.25"}));
  EXPECT_EQ(up.from, 20);
  EXPECT_DOUBLE_EQ(*up.extra_compute, 2.0);
}

TEST_F(StudySpecTest, ValDefaultsToTheTrainingDatasets) {
  const study::StudySpec s = study::parse_study_spec(write(pretrain_ + "variants: [{name: d}]\n"));
  ASSERT_EQ(s.val.size(), 2u);
  EXPECT_EQ(s.val[1], fs::canonical(dir_.path()) / "data" / "b");  // without the weight
}

TEST_F(StudySpecTest, AGivenDenseCheckpoint) {
  const study::StudySpec s =
      study::parse_study_spec(write("data: [data/a]\ndense: {checkpoint: dense, sunk_flops: 1.5e12}\nvariants: [{name: d}]\n"));
  EXPECT_FALSE(s.dense.pretrains());
  EXPECT_EQ(s.dense.checkpoint, fs::canonical(dir_.path()) / "dense");
  EXPECT_DOUBLE_EQ(*s.dense.sunk_flops, 1.5e12);
}

TEST_F(StudySpecTest, RefusesWhatWouldSilentlyChangeTheComparison) {
  expect_refused("data: [data/a]\n", "dense: missing");
  expect_refused(pretrain_ + "variants: [{name: d}]\ntypo_key: 1\n", "typo_key: unknown key");
  expect_refused(pretrain_ + "variants: [{name: d, convrt: {experts: 4}}]\n", "variants[0].convrt: unknown key");
  expect_refused(pretrain_ + "variants: [{name: d}, {name: d}]\n", "two variants are named 'd'");
  expect_refused(pretrain_ + "variants: [{name: ../x}]\n", "letters, digits");
  expect_refused(pretrain_ + "train: {steps: 10}\nvariants: [{name: d}]\n", "--steps is set by the study itself");
  expect_refused(pretrain_ + "variants: [{name: d, train: {out: x}}]\n", "variants.d.train.out");
  expect_refused(pretrain_ + "variants: [{name: d, convert: {force: true}}]\n", "--force is set by the study");
  expect_refused(pretrain_ + "variants: [{name: d, from: 30}]\n", "step 30 is not kept");
  expect_refused(pretrain_ + "variants: []\n", "expected a list of variants");
  expect_refused(pretrain_ + "extra_compute: -1\nvariants: [{name: d}]\n", "extra_compute: expected a positive number");
  expect_refused(pretrain_ + "evals: 0\nvariants: [{name: d}]\n", "evals: must be at least 1");
  expect_refused("data: [data/missing]\ndense: {checkpoint: dense, sunk_flops: 1}\nvariants: [{name: d}]\n",
                 "is not a dataset directory");
  expect_refused("data: [data/a]\ndense: {checkpoint: dense, init: {arch: llama}}\nvariants: [{name: d}]\n",
                 "give either `checkpoint:`");
  expect_refused("data: [data/a]\ndense: {checkpoint: dense}\nvariants: [{name: d, from: 1}]\n",
                 "needs a study that pretrains");
  expect_refused("data: [data/a\n", "not valid YAML");
}

TEST_F(StudySpecTest, SeedsAreDistinctPositiveIntegers) {
  EXPECT_TRUE(study::parse_study_spec(write(pretrain_ + "variants: [{name: d}]\n")).seeds.empty());  // absent: no seeds
  const study::StudySpec s = study::parse_study_spec(write(pretrain_ + "seeds: [3, 1, 20]\nvariants: [{name: d}]\n"));
  EXPECT_EQ(s.seeds, (std::vector<int64_t>{3, 1, 20}));  // the spec's order
  // Without seeds a train map may set --seed as before.
  EXPECT_EQ(study::flags_to_args(study::parse_study_spec(write(pretrain_ + "train: {seed: 4}\nvariants: [{name: d}]\n")).train),
            (std::vector<std::string>{"--seed", "4"}));
  const std::string v = "variants: [{name: d}]\n";
  expect_refused(pretrain_ + "seeds: [1, 2, 1]\n" + v, "seeds: seed 1 is listed twice");
  expect_refused(pretrain_ + "seeds: [1, x]\n" + v, "seeds[1]: expected an integer, got 'x'");
  expect_refused(pretrain_ + "seeds: [1, 2.5]\n" + v, "seeds[1]: expected an integer, got '2.5'");
  expect_refused(pretrain_ + "seeds: [0]\n" + v, "seeds[0]: must be at least 1 (got 0)");
  expect_refused(pretrain_ + "seeds: [-3]\n" + v, "seeds[0]: must be at least 1 (got -3)");
  expect_refused(pretrain_ + "seeds: []\n" + v, "seeds: empty list");
  expect_refused(pretrain_ + "seeds: 3\n" + v, "seeds: expected a list of distinct positive integers, e.g. [1, 2, 3]");
  expect_refused(pretrain_ + "seeds: [[1]]\n" + v, "seeds[0]: expected a single value");
  expect_refused(pretrain_ + "seeds: [1]\ntrain: {seed: 4}\n" + v, "train.seed: `seeds:` sets --seed of every run");
  expect_refused(pretrain_ + "seeds: [1]\nvariants: [{name: d, train: {seed: 4}}]\n", "variants.d.train.seed: `seeds:` sets");
  // The dense pretraining is one run, shared by every seed: its own seed stays free.
  EXPECT_EQ(study::parse_study_spec(write(pretrain_ + "seeds: [1]\npretrain: {seed: 4}\n" + v)).seeds.size(), 1u);
}

TEST(StudyRuns, DirectoriesAndFlagsOfEachSeedsRun) {
  // Without seeds: today's names, no --seed; with seeds: one directory per seed under the variant's.
  EXPECT_EQ(study::run_dir("upcycle", std::nullopt), "runs/upcycle");
  EXPECT_EQ(study::model_dir("upcycle", std::nullopt), "models/upcycle");
  EXPECT_EQ(study::run_dir("upcycle", 2), "runs/upcycle/seed-2");
  EXPECT_EQ(study::model_dir("up.v2", 10), "models/up.v2/seed-10");
  study::StudySpec spec;
  spec.train = {{"lr", {"1e-3"}}, {"warmup", {"10"}}};
  EXPECT_EQ(study::run_seeds(spec), (std::vector<std::optional<int64_t>>{std::nullopt}));
  spec.seeds = {2, 1};
  EXPECT_EQ(study::run_seeds(spec), (std::vector<std::optional<int64_t>>{2, 1}));

  study::VariantSpec up{"up", "", study::Flags{{"experts", {"4"}}}, {{"warmup", {"5"}}}, std::nullopt, std::nullopt};
  EXPECT_EQ(study::flags_to_args(study::run_train_flags(spec, up, std::nullopt)),
            (std::vector<std::string>{"--lr", "1e-3", "--warmup", "5"}));
  EXPECT_EQ(study::flags_to_args(study::run_train_flags(spec, up, 3)),
            (std::vector<std::string>{"--lr", "1e-3", "--warmup", "5", "--seed", "3"}));
  EXPECT_FALSE(study::fixes_convert_seed(up));
  EXPECT_EQ(study::flags_to_args(*study::run_convert_flags(up, std::nullopt)), (std::vector<std::string>{"--experts", "4"}));
  EXPECT_EQ(study::flags_to_args(*study::run_convert_flags(up, 3)), (std::vector<std::string>{"--experts", "4", "--seed", "3"}));
  // A convert seed written in the spec is kept for every study seed; only train's --seed follows it.
  study::VariantSpec fixed = up;
  fixed.convert->push_back({"seed", {"7"}});
  EXPECT_TRUE(study::fixes_convert_seed(fixed));
  EXPECT_EQ(study::flags_to_args(*study::run_convert_flags(fixed, 3)), (std::vector<std::string>{"--experts", "4", "--seed", "7"}));
  EXPECT_EQ(study::flags_to_args(study::run_train_flags(spec, fixed, 3)).back(), "3");
  // Dense continuation converts nothing, whatever the seed.
  const study::VariantSpec dense{"dense-continuation", "", std::nullopt, {}, std::nullopt, std::nullopt};
  EXPECT_FALSE(study::run_convert_flags(dense, 3));
}

TEST(StudyFlags, AVariantsFlagsRefineTheStudys) {
  const study::Flags base = {{"lr", {"1e-3"}}, {"warmup", {"10"}}, {"eval-at-start", {}}};
  const study::Flags over = {{"warmup", {"20"}}, {"capacity-factor", {"2"}}};
  EXPECT_EQ(study::flags_to_args(study::merge_flags(base, over)),
            (std::vector<std::string>{"--lr", "1e-3", "--warmup", "20", "--eval-at-start", "--capacity-factor", "2"}));
  EXPECT_EQ(study::flags_to_args(study::merge_flags({}, over)), study::flags_to_args(over));
}

TEST(StudyPlan, StepsComeFromTheBudgetAndTheCostPerStep) {
  // 1e12 FLOPs at 6e6 FLOPs/token and 4096 tokens/step: 1e12 / 2.4576e10 = 40.69 → 41 steps.
  EXPECT_EQ(study::steps_for_budget(1e12, 6e6, 4096), 41);
  // Twice the cost per token (an MoE with top-2 experts) → half the steps: 20.3 → 20.
  EXPECT_EQ(study::steps_for_budget(1e12, 12e6, 4096), 20);
  EXPECT_EQ(study::steps_for_budget(1.0, 6e6, 4096), 1);  // never zero steps
  EXPECT_EQ(study::eval_interval(41, 8), 6);   // ceil(41/8): evaluations at 6, 12, …, 36 and at 41
  EXPECT_EQ(study::eval_interval(5, 8), 1);
  EXPECT_EQ(study::pretrain_save_interval(400, {100, 300}), 100);
  EXPECT_EQ(study::pretrain_save_interval(240, {90}), 30);
  EXPECT_EQ(study::pretrain_save_interval(7, {}), 7);
  // A continuation starts at 0 %, an MoE from scratch (no sunk cost) at −100 %.
  EXPECT_DOUBLE_EQ(study::extra_compute_percent(2e12, 0, 2e12), 0.0);
  EXPECT_DOUBLE_EQ(study::extra_compute_percent(2e12, 1e12, 2e12), 50.0);
  EXPECT_DOUBLE_EQ(study::extra_compute_percent(0, 0, 2e12), -100.0);
  EXPECT_DOUBLE_EQ(study::extra_compute_percent(1e12, 1e12, 2e12), 0.0);  // started from an earlier checkpoint
}

TEST(StudyPlan, CommandLinesQuoteOnlyWhatTheShellWouldSplit) {
  EXPECT_EQ(study::shell_quote("every:2:1"), "every:2:1");
  EXPECT_EQ(study::shell_quote("a b"), "'a b'");
  EXPECT_EQ(study::shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(study::shell_quote(""), "''");
  EXPECT_EQ(study::command_line("train", {"--lr", "1e-3", "--out", "/x y"}), "upcycle train --lr 1e-3 --out '/x y'");
}

}  // namespace
}  // namespace upcycle
