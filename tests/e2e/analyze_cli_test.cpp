// `upcycle analyze` end to end on a tiny llama (`init --preset tiny --dtype f32`) upcycled by `convert`:
// copied experts are identical to each other and to the dense FFN (similarities exactly 1, also when
// their neurons are shuffled, where the storage-order cosine reads ≈ 0), drop init at ratio 0.5 keeps
// half the neurons (matched ≈ 0.6 with the dense FFN, storage order ≈ ½; the drop-upcycling preset's
// shuffled per-matrix drop ≈ 0.52), random experts sit at the max-of-random-cosines floor (≈ 0.2 at
// D = 64, F = 192), fine-grained copies give expert→dense 1; a zero router sends every token to
// expert 0 (ties go to the lower index) so that expert's share is 1 in every domain; domain losses
// equal `upcycle eval`; --out equals --json; a dense checkpoint has no layers; a training checkpoint's
// step and FLOPs are read from trainer_state.json; bad input gives one-line errors naming the file (exit 2).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "analysis/routing_analysis.h"
#include "core/json.h"
#include "io/model_config.h"
#include "support/test_support.h"
#include "support/train_test_support.h"
#include "train/train_checkpoint.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;

class AnalyzeCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir;
    auto ok = [](const std::vector<std::string>& args) {
      auto r = test::run_upcycle(args);
      ASSERT_EQ(r.exit_code, 0) << r.err;
    };
    ok({"init", "--arch", "llama", "--preset", "tiny", "--dtype", "f32", "--seed", "3", path("dense")});
    ok({"convert", path("dense"), path("copy"), "--experts", "4", "--top-k", "2"});
    ok({"convert", path("dense"), path("drop"), "--experts", "4", "--top-k", "2", "--expert-init", "drop",
        "--drop-ratio", "0.5"});
    ok({"convert", path("dense"), path("zero"), "--experts", "4", "--top-k", "1", "--router-init", "zeros"});
    ok({"convert", path("dense"), path("shuffled-copy"), "--experts", "4", "--top-k", "2", "--expert-split",
        "shuffled"});
    ok({"convert", path("dense"), path("drop-upcycling"), "--preset", "drop-upcycling", "--seed", "1"});
    ok({"convert", path("dense"), path("random"), "--experts", "4", "--top-k", "2", "--expert-init", "random"});
    ok({"convert", path("dense"), path("fine"), "--experts", "4", "--top-k", "2", "--granularity", "2",
        "--weight-scaling", "none"});
    const uint64_t vocab = uint64_t(read_model_config(*dir_ / "dense").vocab_size);
    // Two domains on different halves of the vocabulary; 300 tokens = 9 windows of 33.
    test::write_dataset(*dir_ / "prose", "prose", test::cyclic_tokens(64, 7), test::cyclic_tokens(300, 37, 5), vocab);
    test::write_dataset(*dir_ / "code", "code", test::cyclic_tokens(64, 7), test::cyclic_tokens(300, 29, 300), vocab);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }

  static Json analyze(std::vector<std::string> extra) {
    std::vector<std::string> args = {"analyze"};
    args.insert(args.end(), extra.begin(), extra.end());
    for (const char* a : {"--seq-len", "32", "--json"}) args.push_back(a);
    auto r = test::run_upcycle(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return parse_json(r.out, "analysis", "stdout");
  }
  static void expect_user_error(const test::RunResult& r, const std::string& needle) {
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.err.rfind("upcycle: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  }
  static test::ScratchDir* dir_;
};
test::ScratchDir* AnalyzeCli::dir_ = nullptr;

double sum(const Json& values) {
  double s = 0;
  for (const Json& v : values) s += v.get<double>();
  return s;
}

TEST_F(AnalyzeCli, CopiedExpertsAreIdenticalToEachOtherAndToTheDenseFfn) {
  const Json a = analyze({path("copy"), "--data", path("prose"), path("code"), "--dense", path("dense")});
  EXPECT_EQ(a["format"], "upcycle-analysis");
  EXPECT_EQ(a["version"], 1);
  EXPECT_EQ(a["checkpoint"], path("copy"));
  EXPECT_TRUE(a["step"].is_null());
  EXPECT_TRUE(a["flops"].is_null());
  EXPECT_EQ(a["dense"], path("dense"));
  EXPECT_EQ(a["seq_len"], 32);
  ASSERT_EQ(a["domains"].size(), 2u);
  EXPECT_EQ(a["domains"][0]["domain"], "prose");
  EXPECT_EQ(a["domains"][1]["domain"], "code");
  EXPECT_EQ(a["domains"][1]["split"], "val");
  EXPECT_EQ(a["domains"][0]["tokens"], 9 * 32);
  ASSERT_EQ(a["layers"].size(), 2u);  // tiny: 2 layers, all MoE (mixtral)
  for (const Json& l : a["layers"]) {
    SCOPED_TRACE(l["layer"].dump());
    EXPECT_EQ(l["experts"], 4);
    EXPECT_EQ(l["top_k"], 2);
    EXPECT_NEAR(sum(l["load"]), 1.0, 1e-12);
    EXPECT_EQ(l["dropped"], 0.0);
    // Neuron-matched: bit-identical neurons give exactly 1; storage order agrees up to rounding.
    EXPECT_EQ(l["expert_similarity_mean"].get<double>(), 1.0);
    for (const Json& row : l["expert_similarity"])
      for (const Json& v : row) EXPECT_EQ(v.get<double>(), 1.0);
    EXPECT_EQ(l["dense_similarity_mean"].get<double>(), 1.0);
    ASSERT_EQ(l["dense_similarity"].size(), 4u);
    for (const Json& v : l["dense_similarity"]) EXPECT_EQ(v.get<double>(), 1.0);
    EXPECT_NEAR(l["expert_similarity_ordered_mean"].get<double>(), 1.0, 1e-6);
    EXPECT_NEAR(l["dense_similarity_ordered_mean"].get<double>(), 1.0, 1e-6);
    std::vector<std::vector<double>> loads;
    for (const char* d : {"prose", "code"}) {
      EXPECT_NEAR(sum(l["domain_load"][d]), 1.0, 1e-12);
      loads.push_back(l["domain_load"][d].get<std::vector<double>>());
    }
    EXPECT_DOUBLE_EQ(l["domain_specialization"].get<double>(), analysis::domain_specialization(loads));
    EXPECT_GE(l["entropy"].get<double>(), 0.0);
    EXPECT_LE(l["entropy"].get<double>(), std::log(4.0) + 1e-9);
  }
  EXPECT_EQ(a["summary"]["expert_similarity_mean"].get<double>(), 1.0);
  EXPECT_EQ(a["summary"]["dense_similarity_mean"].get<double>(), 1.0);
  EXPECT_NEAR(a["summary"]["expert_similarity_ordered_mean"].get<double>(), 1.0, 1e-6);
  EXPECT_NEAR(a["summary"]["dense_similarity_ordered_mean"].get<double>(), 1.0, 1e-6);
  EXPECT_DOUBLE_EQ(a["summary"]["domain_specialization"].get<double>(),
                   (a["layers"][0]["domain_specialization"].get<double>() +
                    a["layers"][1]["domain_specialization"].get<double>()) / 2);

  // Without --dense the dense similarities are null (never guessed).
  const Json b = analyze({path("copy"), "--data", path("prose")});
  EXPECT_TRUE(b["dense"].is_null());
  EXPECT_TRUE(b["layers"][0]["dense_similarity"].is_null());
  EXPECT_TRUE(b["layers"][0]["dense_similarity_mean"].is_null());
  EXPECT_TRUE(b["layers"][0]["dense_similarity_ordered_mean"].is_null());
  EXPECT_TRUE(b["summary"]["dense_similarity_mean"].is_null());
  EXPECT_TRUE(b["summary"]["dense_similarity_ordered_mean"].is_null());
  EXPECT_EQ(b["layers"][0]["domain_specialization"], 0.0);  // one domain
}

// Tiny shape D = 64, F = 192: a re-drawn neuron's best cosine with unrelated neurons is ≈ 0.2 (the
// floor), so keeping a fraction 1 − r of the neurons gives ≈ (1 − r) + r · 0.2.
TEST_F(AnalyzeCli, DropInitLowersSimilarity) {
  const Json a = analyze({path("drop"), "--data", path("prose"), "--dense", path("dense")});
  for (const Json& l : a["layers"]) {
    SCOPED_TRACE(l["layer"].dump());
    // Unshuffled, one drop set per expert (r = ½): matched with the dense FFN ≈ ½ + ½·0.2 ≈ 0.6;
    // between experts a neuron is kept in both with probability ¼: ≈ ¼ + ¾·0.2 ≈ 0.4.
    EXPECT_GT(l["dense_similarity_mean"].get<double>(), 0.5);
    EXPECT_LT(l["dense_similarity_mean"].get<double>(), 0.7);
    EXPECT_GT(l["expert_similarity_mean"].get<double>(), 0.3);
    EXPECT_LT(l["expert_similarity_mean"].get<double>(), 0.5);
    // Storage order (no permutation here) gives the kept fraction itself: ≈ ½ and ≈ ¼.
    EXPECT_NEAR(l["dense_similarity_ordered_mean"].get<double>(), 0.5, 0.1);
    EXPECT_NEAR(l["expert_similarity_ordered_mean"].get<double>(), 0.25, 0.1);
  }
}

TEST_F(AnalyzeCli, ShuffledNeuronsAreMatched) {
  // Shuffled copies compute the dense function: matched 1 exactly, storage order ≈ 0.
  const Json c = analyze({path("shuffled-copy"), "--data", path("prose"), "--dense", path("dense")});
  for (const Json& l : c["layers"]) {
    SCOPED_TRACE(l["layer"].dump());
    EXPECT_EQ(l["expert_similarity_mean"].get<double>(), 1.0);
    EXPECT_EQ(l["dense_similarity_mean"].get<double>(), 1.0);
    EXPECT_LT(std::abs(l["expert_similarity_ordered_mean"].get<double>()), 0.1);
    EXPECT_LT(std::abs(l["dense_similarity_ordered_mean"].get<double>()), 0.1);
  }
  // The drop-upcycling preset (8 experts, shuffled, r = ½ drawn per matrix): a neuron keeps 0–3 of its
  // gate row, up row and down column, ≈ 0.52 with the dense FFN; storage order reads ≈ 0.
  const Json d = analyze({path("drop-upcycling"), "--data", path("prose"), "--dense", path("dense")});
  for (const Json& l : d["layers"]) {
    SCOPED_TRACE(l["layer"].dump());
    ASSERT_EQ(l["dense_similarity"].size(), 8u);
    for (const Json& v : l["dense_similarity"]) {
      EXPECT_GT(v.get<double>(), 0.4);
      EXPECT_LT(v.get<double>(), 0.7);
    }
    EXPECT_GT(l["expert_similarity_mean"].get<double>(), 0.25);
    EXPECT_LT(l["expert_similarity_mean"].get<double>(), 0.45);
    EXPECT_LT(std::abs(l["dense_similarity_ordered_mean"].get<double>()), 0.05);
    EXPECT_LT(std::abs(l["expert_similarity_ordered_mean"].get<double>()), 0.05);
  }
  // Random experts: nothing to match beyond the floor.
  const Json r = analyze({path("random"), "--data", path("prose"), "--dense", path("dense")});
  for (const Json& l : r["layers"]) {
    SCOPED_TRACE(l["layer"].dump());
    EXPECT_LT(l["dense_similarity_mean"].get<double>(), 0.3);
    EXPECT_LT(l["expert_similarity_mean"].get<double>(), 0.3);
    EXPECT_GT(l["expert_similarity_mean"].get<double>(), 0.1);
  }
}

TEST_F(AnalyzeCli, FineGrainedExpertsAreMatchedOneWayWithTheDenseFfn) {
  // G = 2 contiguous shards of F/2 neurons: each expert neuron is a dense neuron (expert→dense 1);
  // experts e and e + 2 hold the same shard (1), the two shards share nothing (the floor).
  const Json a = analyze({path("fine"), "--data", path("prose"), "--dense", path("dense")});
  for (const Json& l : a["layers"]) {
    SCOPED_TRACE(l["layer"].dump());
    ASSERT_EQ(l["dense_similarity"].size(), 4u);
    for (const Json& v : l["dense_similarity"]) EXPECT_EQ(v.get<double>(), 1.0);
    EXPECT_TRUE(l["dense_similarity_ordered_mean"].is_null());  // widths differ: no storage-order cosine
    const auto m = l["expert_similarity"].get<std::vector<std::vector<double>>>();
    EXPECT_EQ(m[0][2], 1.0);
    EXPECT_LT(m[0][1], 0.3);
  }
}

TEST_F(AnalyzeCli, ZeroRouterSendsEveryTokenToExpertZero) {
  const Json a = analyze({path("zero"), "--data", path("prose"), path("code")});
  const std::vector<double> first = {1, 0, 0, 0};
  for (const Json& l : a["layers"]) {
    EXPECT_EQ(l["load"].get<std::vector<double>>(), first);
    EXPECT_EQ(l["domain_load"]["prose"].get<std::vector<double>>(), first);
    EXPECT_EQ(l["domain_load"]["code"].get<std::vector<double>>(), first);
    EXPECT_EQ(l["domain_specialization"], 0.0);
    EXPECT_NEAR(l["entropy"].get<double>(), std::log(4.0), 1e-6);  // uniform router probabilities
    EXPECT_NEAR(l["top1"].get<double>(), 0.25, 1e-6);
  }
}

TEST_F(AnalyzeCli, DomainLossEqualsEval) {
  const Json a = analyze({path("copy"), "--data", path("prose"), path("code")});
  for (int i = 0; i < 2; ++i) {
    const std::string d = i ? "code" : "prose";
    auto r = test::run_upcycle({"eval", path("copy"), "--data", path(d), "--seq-len", "32", "--batch", "8", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Json e = parse_json(r.out, "eval", "stdout");
    EXPECT_NEAR(a["domains"][i]["loss"].get<double>(), e["loss"].get<double>(), 1e-9);
    EXPECT_EQ(a["domains"][i]["tokens"], e["tokens"]);
  }
}

TEST_F(AnalyzeCli, OutFileTextAndDenseCheckpoint) {
  const fs::path out = *dir_ / "a.json";
  auto r = test::run_upcycle({"analyze", path("copy"), "--data", path("prose"), path("code"), "--dense", path("dense"),
                              "--seq-len", "32", "--out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("exp-sim"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dense-ord"), std::string::npos) << r.out;  // the storage-order column
  EXPECT_NE(r.out.find("top experts per domain"), std::string::npos) << r.out;
  const Json file = read_json_file(out, "analysis");
  EXPECT_EQ(file, analyze({path("copy"), "--data", path("prose"), path("code"), "--dense", path("dense")}));

  const Json d = analyze({path("dense"), "--data", path("prose")});
  EXPECT_TRUE(d["layers"].empty());
  EXPECT_EQ(d["domains"].size(), 1u);
  EXPECT_TRUE(d["summary"]["expert_similarity_mean"].is_null());
  r = test::run_upcycle({"analyze", path("dense"), "--data", path("prose"), "--seq-len", "32"});
  EXPECT_NE(r.out.find("no MoE layers"), std::string::npos) << r.out;
}

TEST_F(AnalyzeCli, TrainingCheckpointGivesStepAndFlops) {
  const fs::path ckpt = *dir_ / "step-00000007";
  fs::copy(*dir_ / "copy", ckpt, fs::copy_options::recursive);
  train::TrainerState state;
  state.step = 7;
  state.flops = 1.5e9;
  test::write_bytes(ckpt / train::kTrainerStateFile, train::trainer_state_to_json(state).dump(2));
  const Json a = analyze({ckpt.string(), "--data", path("prose")});
  EXPECT_EQ(a["step"], 7);
  EXPECT_EQ(a["flops"], 1.5e9);
}

TEST_F(AnalyzeCli, BadInputIsOneLineError) {
  expect_user_error(test::run_upcycle({"analyze", path("missing"), "--data", path("prose")}), path("missing"));
  expect_user_error(test::run_upcycle({"analyze", path("copy")}), "missing --data");
  expect_user_error(test::run_upcycle({"analyze", path("copy"), "--data", path("nope")}), path("nope"));
  expect_user_error(test::run_upcycle({"analyze", path("copy"), "--data", path("prose"), "--dense", path("nope")}),
                    path("nope"));
  expect_user_error(test::run_upcycle({"analyze", path("copy"), "--data", path("prose"), path("prose")}),
                    "domain 'prose'");
  expect_user_error(test::run_upcycle({"analyze", path("copy"), "--data", path("prose"), "--seq-len", "400"}),
                    "fewer than one window");
  // Ids beyond the model's vocabulary (a dataset of another tokenizer): the shard is named.
  test::write_dataset(*dir_ / "big", "big", {1, 2}, test::cyclic_tokens(100, 3, 70000), 80000);
  expect_user_error(test::run_upcycle({"analyze", path("copy"), "--data", path("big"), "--seq-len", "32"}),
                    (*dir_ / "big" / "val-00000.tok").string());
}

}  // namespace
}  // namespace upcycle
