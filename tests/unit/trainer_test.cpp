// The trainer in process (train/trainer.h) on tiny models: the loss falls on a learnable stream (dense
// and MoE); step 1 equals AdamW written out by hand on the gradient the engine computes for the same
// batch; two micro-batches of one sequence equal one of two; a NaN weight skips the step without
// touching the parameters; trainer-state JSON round trips bit for bit; checkpoint discovery ignores
// staging leftovers; options resolve routing from the config (HF aux coefficient × top-k); a Dirichlet
// prior raises (α < 1) or lowers (α > 1) routing confidence against the same run without it, and a
// per-domain prior routes each domain's tokens to its large-α experts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>

#include "backend/backend.h"
#include "data/mixture_batcher.h"
#include "data/token_dataset.h"
#include "model/load_model.h"
#include "support/expect_error.h"
#include "support/train_test_support.h"
#include "train/train_checkpoint.h"
#include "train/trainer.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;
using train::Trainer;
constexpr int kDirichletSteps = 40;
constexpr double kDirichletCoef = 1.0;
constexpr float kRouterSharpen = 30.0f;
using train::TrainOptions;

// Pseudo-random ids in [0, vocab): data whose order matters.
std::vector<uint32_t> random_tokens(size_t n, uint32_t vocab, uint64_t seed) {
  std::vector<uint32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = uint32_t(CounterRng(seed, "tokens").bits(i) % vocab);
  return ids;
}

class TrainerTest : public ::testing::Test {
 protected:
  void make(bool moe, const std::vector<uint32_t>& train_ids) {
    config_ = test::tiny_train_config(moe);
    fs::remove_all(dir_ / "model");
    fs::remove_all(dir_ / "data");
    test::write_tiny_model(dir_ / "model", config_, 7);
    test::write_dataset(dir_ / "data", "synthetic", train_ids, test::cyclic_tokens(200, 11), 11);
  }
  TrainOptions options(const std::string& run) const {
    TrainOptions o;
    o.model = (dir_ / "model").string();
    o.data = {(dir_ / "data").string()};
    o.out = (dir_ / run).string();
    o.steps = 100;
    o.micro_batch = 2;
    o.seq_len = 8;
    o.schedule = "constant";
    o.lr = 1e-3;
    o.min_lr = 0;
    o.save_every = 1000;
    return o;
  }
  test::ScratchDir dir_;
  ModelConfig config_;
};

TEST_F(TrainerTest, LossFallsOnALearnableStreamDenseAndMoe) {
  for (bool moe : {false, true}) {
    SCOPED_TRACE(moe ? "moe" : "dense");
    make(moe, test::cyclic_tokens(3000, 11));
    TrainOptions o = options(moe ? "run-moe" : "run-dense");
    o.lr = 2e-2;
    o.micro_batch = 4;
    Trainer t(o, Json::object(), train::RunMode::kFresh);
    std::vector<double> losses;
    for (int s = 0; s < 40; ++s) losses.push_back(t.step().loss);
    EXPECT_NEAR(losses[0], std::log(11.0), 0.1);  // small random init: close to uniform predictions
    double first = 0, last = 0;
    for (int i = 0; i < 5; ++i) first += losses[size_t(i)] / 5, last += losses[losses.size() - 1 - size_t(i)] / 5;
    EXPECT_LT(last, 0.3 * first) << "first " << first << " last " << last;
    EXPECT_EQ(t.state().step, 40);
    EXPECT_EQ(t.state().tokens, 40 * 4 * 8);
    EXPECT_DOUBLE_EQ(t.state().flops, 40.0 * 4 * 8 * t.flops_per_token().train);
  }
}

// Dirichlet-prior shaping moves routing confidence the way the prior says (docs/recipes.md): the mean
// max-probability over the last steps, against the same run without the loss, rises under a sparse
// prior (α = 0.3: Beta(0.3, 0.9) marginals pile up near 0 and 1) and falls under a dense one (α = 5:
// Beta(5, 15), concentrated at 1/4). The routers start ×kRouterSharpen so that routing is already
// fairly confident (top-1 well above 1/E) and can move both ways. --dirichlet-steps stops the gradient,
// not the measurement.
TEST_F(TrainerTest, DirichletPriorShapesRoutingConfidence) {
  make(true, random_tokens(4000, 11, 9));
  auto mean_top1 = [&](const std::string& run, const std::string& prior, double coef, int64_t until) {
    TrainOptions o = options(run);
    o.lr = 2e-2;
    o.micro_batch = 4;
    o.dirichlet_prior = {prior};
    o.dirichlet_coef = coef;
    o.dirichlet_steps = until;
    Trainer t(o, Json::object(), train::RunMode::kFresh);
    const auto& specs = t.model().params().specs();
    for (size_t i = 0; i < specs.size(); ++i)
      if (specs[i].role == WeightRole::kRouter)
        for (float& w : t.model().params().view(i)) w *= kRouterSharpen;
    double top1 = 0, dirichlet = 0;
    for (int s = 0; s < kDirichletSteps; ++s) {
      const train::StepResult r = t.step();
      if (s == 0) {
        EXPECT_GT(r.dirichlet, 0.0);  // measured whenever a prior is set
      }
      if (s < kDirichletSteps - 5) continue;
      for (const auto& l : r.moe) top1 += l.top1_probability / double(5 * r.moe.size());
      dirichlet += r.dirichlet / 5;
    }
    return std::pair{top1, dirichlet};
  };
  const auto [base, base_distance] = mean_top1("run-base", "0.3", 0.0, 0);
  const auto [sparse, sparse_distance] = mean_top1("run-sparse", "0.3", kDirichletCoef, 0);
  const auto [dense, dense_distance] = mean_top1("run-dense", "5", kDirichletCoef, 0);
  const auto [early, early_distance] = mean_top1("run-early", "0.3", kDirichletCoef, 5);
  std::printf("mean top-1 probability, last 5 of %d steps: no prior %.4f, α=0.3 %.4f, α=5 %.4f, α=0.3 for 5 steps "
              "%.4f; L_dir %.4f %.4f %.4f %.4f\n",
              kDirichletSteps, base, sparse, dense, early, base_distance, sparse_distance, dense_distance, early_distance);
  EXPECT_GT(sparse, base + 0.05);
  EXPECT_LT(dense, base - 0.02);
  EXPECT_LT(sparse_distance, base_distance);  // the loss it trains on falls too
  EXPECT_NE(early, sparse);                   // the gradient stopped after step 5
  EXPECT_GT(early_distance, 0.0);
}

// Per-domain priors steer each domain's tokens to "its" experts (docs/recipes.md "Per-domain priors"):
// domain "low" (ids 0–4) gets α = (2, 2, 0.5, 0.5), domain "high" (ids 5–10) the mirror image, top-1
// routing. After kDirichletSteps, each domain's val tokens are routed (evaluation, top-1 counts); the
// share of "low" tokens on experts 0–1 and of "high" tokens on experts 2–3 rises against λ = 0.
TEST_F(TrainerTest, PerDomainDirichletPriorSteersEachDomainToItsExperts) {
  make(true, random_tokens(100, 11, 1));  // the model (its "data" is unused)
  auto ranged = [](size_t n, uint32_t first, uint32_t count, uint64_t seed) {
    std::vector<uint32_t> ids = random_tokens(n, count, seed);
    for (uint32_t& id : ids) id += first;
    return ids;
  };
  test::write_dataset(dir_ / "low", "low", ranged(3000, 0, 5, 1), ranged(200, 0, 5, 2), 11);
  test::write_dataset(dir_ / "high", "high", ranged(3000, 5, 6, 3), ranged(200, 5, 6, 4), 11);
  // Share of each domain's val tokens whose top-1 expert is one of its two large-α experts.
  auto own_share = [&](const std::string& run, double coef) {
    TrainOptions o = options(run);
    o.data = {(dir_ / "low").string(), (dir_ / "high").string()};
    o.val = o.data;
    o.lr = 2e-2;
    o.micro_batch = 4;
    o.top_k = 1;
    o.dirichlet_prior = {"low=2,2,0.5,0.5", "high=0.5,0.5,2,2"};
    o.dirichlet_coef = coef;
    Trainer t(o, Json::object(), train::RunMode::kFresh);
    for (int s = 0; s < kDirichletSteps; ++s) {
      const train::StepResult r = t.step();
      if (s == 0) {
        EXPECT_GT(r.dirichlet, 0.0);  // measured at λ = 0 too
      }
    }
    std::map<std::string, double> share;
    for (const train::EvalRecord& e : t.evaluate()) {
      const size_t own = e.domain == "low" ? 0 : 2;
      int64_t mine = 0, all = 0;
      for (const auto& layer : e.routing)
        for (size_t x = 0; x < layer.tokens_per_expert.size(); ++x) {
          all += layer.tokens_per_expert[x];
          if (x == own || x == own + 1) mine += layer.tokens_per_expert[x];
        }
      share[e.domain] = double(mine) / double(all);
    }
    return share;
  };
  auto base = own_share("run-base", 0.0);
  auto shaped = own_share("run-shaped", kDirichletCoef);
  std::printf("share of tokens routed top-1 to their domain's large-α experts after %d steps: low %.3f → %.3f, "
              "high %.3f → %.3f (λ = 0 → %.1f)\n",
              kDirichletSteps, base["low"], shaped["low"], base["high"], shaped["high"], kDirichletCoef);
  EXPECT_GT(shaped["low"], base["low"] + 0.2);
  EXPECT_GT(shaped["high"], base["high"] + 0.2);
  EXPECT_GT(shaped["low"], 0.8);
  EXPECT_GT(shaped["high"], 0.8);
}

// AdamW at t = 1 written out: m = (1−β1)g, v = (1−β2)g², p ← p(1 − lr·wd) − lr·(m/(1−β1)) /
// (sqrt(v/(1−β2)) + ε), with wd = 0 for norm weights; g from a separate Transformer on the same batch.
TEST_F(TrainerTest, FirstStepIsAdamWOnTheEngineGradient) {
  make(false, random_tokens(2000, 11, 3));
  TrainOptions o = options("run");
  o.clip = 0;  // no clipping: the raw gradient
  o.weight_decay = 0.1;
  o.eps = 1e-8;
  Trainer t(o, Json::object(), train::RunMode::kFresh);
  const std::vector<float> p0(t.model().params().data(), t.model().params().data() + t.model().params().size());

  auto be = backend::make_backend(backend::BackendKind::kCpu);
  auto ref = model::load_transformer(config_, dir_ / "model", *be);
  data::MixtureBatcher batcher({data::open_dataset(dir_ / "data", data::Split::kTrain)}, {1.0}, o.seq_len, o.seed);
  std::vector<int32_t> ids(16), targets(16), domains(2);
  batcher.next(2, ids.data(), targets.data(), domains.data());
  ref->zero_grads();
  ref->forward(ids.data(), 2, 8);
  const double ref_loss = ref->loss(targets.data());
  ref->backward();

  const train::StepResult r = t.step();
  EXPECT_EQ(r.loss, ref_loss);
  double norm2 = 0;
  for (size_t i = 0; i < ref->grads().size(); ++i) norm2 += double(ref->grads().data()[i]) * ref->grads().data()[i];
  EXPECT_NEAR(r.grad_norm, std::sqrt(norm2), 1e-9 * std::sqrt(norm2));
  EXPECT_FALSE(r.skipped);
  EXPECT_EQ(r.lr, o.lr);

  const auto& specs = t.model().params().specs();
  size_t offset = 0, moved = 0;
  for (size_t s = 0; s < specs.size(); ++s) {
    const bool norm = specs[s].role == WeightRole::kAttnNorm || specs[s].role == WeightRole::kMlpNorm ||
                      specs[s].role == WeightRole::kFinalNorm;
    const double wd = norm ? 0.0 : o.weight_decay;
    auto p1 = t.model().params().view(s);
    auto g = ref->grads().view(s);
    for (size_t i = 0; i < p1.size(); ++i) {
      const double gi = g[i], m = (1 - o.beta1) * gi, v = (1 - o.beta2) * gi * gi;
      const double expected = double(p0[offset + i]) * (1 - o.lr * wd) -
                              o.lr * (m / (1 - o.beta1)) / (std::sqrt(v / (1 - o.beta2)) + o.eps);
      ASSERT_NEAR(p1[i], expected, 1e-6 * o.lr + 1e-7 * std::fabs(expected)) << specs[s].name << "[" << i << "]";
      moved += p1[i] != p0[offset + i];
    }
    offset += p1.size();
  }
  EXPECT_GT(moved, offset / 2);
  EXPECT_EQ(t.optimizer().steps(), 1);
}

// Gradient accumulation averages: micro-batch 1 × 2 accumulations = micro-batch 2 (same windows). The
// aux loss is off: it is not linear in the batch (counts × mean probabilities over the micro-batch).
TEST_F(TrainerTest, TwoMicroBatchesOfOneEqualOneOfTwo) {
  make(true, random_tokens(2000, 11, 5));
  TrainOptions a = options("run-a"), b = options("run-b");
  a.clip = b.clip = 0;
  a.aux_loss_coef = b.aux_loss_coef = 0;
  a.jitter = b.jitter = 0;
  b.micro_batch = 1;
  b.grad_accum = 2;
  Trainer ta(a, Json::object(), train::RunMode::kFresh), tb(b, Json::object(), train::RunMode::kFresh);
  EXPECT_EQ(ta.tokens_per_step(), tb.tokens_per_step());
  {  // one step: after it, elements whose gradient is ~0 may move either way, so a second would diverge
    const train::StepResult ra = ta.step(), rb = tb.step();
    EXPECT_NEAR(ra.loss, rb.loss, 1e-6 * ra.loss);
    EXPECT_NEAR(ra.grad_norm, rb.grad_norm, 1e-5 * ra.grad_norm);
    const auto& ga = ta.model().grads();
    const auto& gb = tb.model().grads();
    float scale = 0;
    for (size_t i = 0; i < ga.size(); ++i) scale = std::max(scale, std::fabs(ga.data()[i]));
    ASSERT_GT(scale, 0);
    for (size_t i = 0; i < ga.size(); ++i) ASSERT_NEAR(ga.data()[i], gb.data()[i], 1e-5f * scale) << i;
    for (size_t i = 0; i < ga.size(); ++i) {  // where the gradient is not ~0, Adam moves both the same way
      if (std::fabs(ga.data()[i]) > 1e-3f * scale) {
        ASSERT_NEAR(ta.model().params().data()[i], tb.model().params().data()[i], 1e-3 * a.lr) << i;
      }
    }
  }
}

TEST_F(TrainerTest, NonFiniteLossSkipsTheStepAndKeepsTheParameters) {
  make(false, random_tokens(2000, 11, 9));
  Trainer t(options("run"), Json::object(), train::RunMode::kFresh);
  t.model().params().at("model.norm.weight")[0] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> before(t.model().params().data(), t.model().params().data() + t.model().params().size());
  const train::StepResult r = t.step();
  EXPECT_TRUE(r.skipped);
  EXPECT_TRUE(std::isnan(r.loss));
  EXPECT_EQ(std::memcmp(before.data(), t.model().params().data(), before.size() * sizeof(float)), 0);
  EXPECT_EQ(t.state().skipped_steps, 1);
  EXPECT_EQ(t.state().consecutive_nonfinite, 1);
  EXPECT_EQ(t.state().step, 1);  // the batch is consumed
  EXPECT_EQ(t.optimizer().steps(), 0);
}

TEST(TrainCheckpoint, TrainerStateRoundTripsBitForBit) {
  train::TrainerState s;
  s.step = 20;
  s.tokens = 12345;
  s.flops = 1.0 / 3.0 * 1e15;
  s.skipped_steps = 2;
  s.consecutive_nonfinite = 1;
  s.data = {{"draws", 7}};
  s.expert_bias[1] = {0.1f, -1e-3f, 3.0e-7f, 0.0f};
  s.options_digest = "00ff";
  const Json j = Json::parse(train::trainer_state_to_json(s).dump());
  const train::TrainerState back = train::trainer_state_from_json(j, "state.json");
  EXPECT_EQ(back.step, 20);
  EXPECT_EQ(back.tokens, 12345);
  EXPECT_EQ(back.flops, s.flops);
  EXPECT_EQ(back.skipped_steps, 2);
  EXPECT_EQ(back.consecutive_nonfinite, 1);
  EXPECT_EQ(back.data, s.data);
  EXPECT_EQ(back.expert_bias, s.expert_bias);
  EXPECT_EQ(back.options_digest, "00ff");
  Json bad = j;
  bad.erase("tokens");
  EXPECT_UPCYCLE_ERROR(train::trainer_state_from_json(bad, "state.json"), "no \"tokens\"", "state.json");
}

TEST(TrainCheckpoint, LatestSkipsStagingAndIncompleteDirectoriesAndPruneKeepsTheNewest) {
  test::ScratchDir dir;
  EXPECT_EQ(train::checkpoint_dir_name(20), "step-00000020");
  EXPECT_EQ(train::checkpoint_step_of("step-00000020"), 20);
  EXPECT_FALSE(train::checkpoint_step_of(".step-00000030.tmp-1-2"));
  EXPECT_FALSE(train::checkpoint_step_of("step-"));
  EXPECT_FALSE(train::find_latest_checkpoint(dir.path()));
  for (int step : {5, 10, 15}) {
    fs::create_directory(dir / train::checkpoint_dir_name(step));
    test::write_bytes(dir / train::checkpoint_dir_name(step) / train::kTrainerStateFile, "{}");
  }
  fs::create_directory(dir / "step-00000020");              // no trainer state: not complete
  fs::create_directory(dir / ".step-00000025.tmp-123-456");  // an interrupted write
  EXPECT_EQ(train::find_latest_checkpoint(dir.path()), dir / "step-00000015");
  EXPECT_FALSE(fs::exists(dir / ".step-00000025.tmp-123-456"));
  train::prune_checkpoints(dir.path(), 2);
  EXPECT_FALSE(fs::exists(dir / "step-00000005"));
  EXPECT_FALSE(fs::exists(dir / "step-00000010"));
  EXPECT_TRUE(fs::exists(dir / "step-00000015"));
  EXPECT_TRUE(fs::exists(dir / "step-00000020"));
}

TEST(TrainOptions, RoutingComesFromTheConfigUnlessGiven) {
  const ModelConfig moe = test::tiny_train_config(true);  // top-2, router_aux_loss_coef 0.01
  TrainOptions o;
  model::MoeOptions m = train::resolve_moe_options(o, moe);
  EXPECT_EQ(m.top_k, 2);
  EXPECT_EQ(m.num_experts, 4);
  EXPECT_DOUBLE_EQ(m.aux_loss_coef, 0.02);  // HF coefficient × top-k
  EXPECT_EQ(m.z_loss_coef, 0.0);
  EXPECT_EQ(m.capacity_factor, 0.0);
  o.top_k = 1;
  o.aux_loss_coef = 0.5;
  o.jitter = 0.1;
  o.routing = "expert-choice";
  o.capacity_factor = 1.5;
  m = train::resolve_moe_options(o, moe);
  EXPECT_EQ(m.top_k, 1);
  EXPECT_EQ(m.aux_loss_coef, 0.5);
  EXPECT_EQ(m.jitter, 0.1);
  EXPECT_EQ(m.mode, model::RoutingMode::kExpertChoice);
  o.capacity_factor = 0;
  EXPECT_UPCYCLE_ERROR(train::resolve_moe_options(o, moe), "needs --capacity-factor", "");
  TrainOptions dense_opts;
  dense_opts.model = "dense-dir";
  dense_opts.top_k = 2;
  EXPECT_UPCYCLE_ERROR(train::resolve_moe_options(dense_opts, test::tiny_train_config(false)),
                       "--top-k applies to MoE models only", "dense-dir");
  TrainOptions big;
  big.top_k = 5;
  EXPECT_UPCYCLE_ERROR(train::resolve_moe_options(big, moe), "exceeds the model's 4 experts", "");
}

// DOMAIN=α1,…,αE: one row per dataset of the mixture, by domain name (two datasets may share one);
// an unknown name, a domain left out, a name twice, or a mix with the plain form is an Error.
TEST(TrainOptions, DirichletPriorResolvesPerDomain) {
  const ModelConfig moe = test::tiny_train_config(true);  // 4 experts
  TrainOptions o;
  o.dirichlet_coef = 0.1;
  o.dirichlet_prior = {"web=2,2,0.5,0.5", "code=0.5"};
  const model::MoeOptions m = train::resolve_moe_options(o, moe);
  EXPECT_TRUE(m.dirichlet_alpha_E.empty());  // resolved against the mixture's domains below
  EXPECT_EQ(m.dirichlet_coef, 0.1);
  EXPECT_EQ(train::resolve_domain_dirichlet_prior(o, 4, {"code", "web", "code"}),
            (std::vector<std::vector<double>>{{0.5, 0.5, 0.5, 0.5}, {2, 2, 0.5, 0.5}, {0.5, 0.5, 0.5, 0.5}}));
  EXPECT_UPCYCLE_ERROR(train::resolve_domain_dirichlet_prior(o, 4, {"web", "math", "code"}),
                       "no prior for domain 'math' of the --data mixture (its domains: web, math, code)", "");
  EXPECT_UPCYCLE_ERROR(train::resolve_domain_dirichlet_prior(o, 4, {"web"}),
                       "code=0.5: no domain 'code' in the --data mixture (its domains: web)", "");
  o.dirichlet_prior = {"web=2,2,0.5,0.5", "web=1"};
  EXPECT_UPCYCLE_ERROR(train::resolve_domain_dirichlet_prior(o, 4, {"web"}), "domain 'web' given twice", "");
  o.dirichlet_prior = {"web=2,2,0.5", "code=1"};
  EXPECT_UPCYCLE_ERROR(train::resolve_domain_dirichlet_prior(o, 4, {"web", "code"}), "3 concentrations", "");
  o.dirichlet_prior = {"web=2,2,0.5,0.5", "1"};
  EXPECT_UPCYCLE_ERROR(train::resolve_moe_options(o, moe), "not both", "");
  o.dirichlet_prior = {"1", "2"};
  EXPECT_UPCYCLE_ERROR(train::resolve_moe_options(o, moe), "2 priors without a domain", "");
  o.dirichlet_prior = {"2,2,0.5,0.5"};  // the plain form: no per-domain rows
  EXPECT_TRUE(train::resolve_domain_dirichlet_prior(o, 4, {"web", "code"}).empty());
}

TEST(TrainOptions, DirichletPriorResolvesPerExpert) {
  const ModelConfig moe = test::tiny_train_config(true);  // 4 experts
  TrainOptions o;
  EXPECT_TRUE(train::resolve_moe_options(o, moe).dirichlet_alpha_E.empty());  // off by default
  o.dirichlet_coef = 0.1;  // a coefficient alone: the uniform prior α = 1
  model::MoeOptions m = train::resolve_moe_options(o, moe);
  EXPECT_EQ(m.dirichlet_alpha_E, (std::vector<double>{1, 1, 1, 1}));
  EXPECT_EQ(m.dirichlet_coef, 0.1);
  o.dirichlet_prior = {"0.5,0.5,2,2"};
  EXPECT_EQ(train::resolve_moe_options(o, moe).dirichlet_alpha_E, (std::vector<double>{0.5, 0.5, 2, 2}));
  o.dirichlet_coef = 0;  // a prior alone is measured, not trained
  m = train::resolve_moe_options(o, moe);
  EXPECT_EQ(m.dirichlet_alpha_E.size(), 4u);
  EXPECT_EQ(m.dirichlet_coef, 0.0);
  o.dirichlet_prior = {"1,2"};
  EXPECT_UPCYCLE_ERROR(train::resolve_moe_options(o, moe), "2 concentrations for a model with 4 experts", "");
  TrainOptions dense_opts;
  dense_opts.model = "dense-dir";
  dense_opts.dirichlet_coef = 0.1;
  EXPECT_UPCYCLE_ERROR(train::resolve_moe_options(dense_opts, test::tiny_train_config(false)),
                       "--dirichlet-coef applies to MoE models only", "dense-dir");
  TrainOptions bad;
  bad.out = "run";
  bad.model = "m";
  bad.data = {"d"};
  bad.dirichlet_steps = 10;
  EXPECT_UPCYCLE_ERROR(train::validate_options(bad), "--dirichlet-steps needs --dirichlet-coef > 0", "");
  bad.dirichlet_coef = -1;
  EXPECT_UPCYCLE_ERROR(train::validate_options(bad), "--dirichlet-coef must be ≥ 0", "");
}

// dots1 (sigmoid scores): routing from the config's groups and scaling factor; no aux or z loss, no
// expert choice, and --top-k must fit in the kept groups.
TEST(TrainOptions, Dots1RoutesWithoutAuxLosses) {
  ModelConfig c = test::tiny_train_config(true);
  c.family = Family::kDots1;
  c.moe_intermediate_size = 32, c.shared_expert_intermediate_size = 32;
  c.router_scoring = RouterScoring::kSigmoid, c.router_aux_loss_coef = 0;
  c.n_group = 2, c.topk_group = 1, c.routed_scaling_factor = 2.5;
  TrainOptions o;
  model::MoeOptions m = train::resolve_moe_options(o, c);
  EXPECT_EQ(m.scoring, RouterScoring::kSigmoid);
  EXPECT_EQ(m.n_group, 2);
  EXPECT_EQ(m.topk_group, 1);
  EXPECT_EQ(m.topk_scaling, 2.5);
  EXPECT_EQ(m.aux_loss_coef, 0.0);
  o.aux_loss_coef = 0.01;
  EXPECT_UPCYCLE_ERROR(train::resolve_moe_options(o, c), "--aux-loss-coef is not implemented for sigmoid", "");
  o.aux_loss_coef = -1, o.z_loss_coef = 0.001;
  EXPECT_UPCYCLE_ERROR(train::resolve_moe_options(o, c), "--z-loss-coef is not implemented for sigmoid", "");
  o.z_loss_coef = 0, o.top_k = 3;
  EXPECT_UPCYCLE_ERROR(train::resolve_moe_options(o, c), "exceeds the 2 experts of the model's topk_group groups", "");
  o.top_k = 0, o.routing = "expert-choice", o.capacity_factor = 1;
  EXPECT_UPCYCLE_ERROR(train::resolve_moe_options(o, c), "needs softmax router scores", "");
  TrainOptions prior;
  prior.model = "dots1-dir";
  prior.dirichlet_coef = 0.1;  // the Dirichlet prior's Beta marginals are for softmax probabilities
  EXPECT_UPCYCLE_ERROR(train::resolve_moe_options(prior, c), "--dirichlet-prior needs softmax router scores", "dots1-dir");
}

TEST(TrainOptions, DataWeightsAndValidation) {
  EXPECT_EQ(train::parse_data_source("a/b:0.25").dir, "a/b");
  EXPECT_EQ(train::parse_data_source("a/b:0.25").weight, 0.25);
  EXPECT_EQ(train::parse_data_source("a/b").weight, 1.0);
  EXPECT_EQ(train::parse_data_source("odd:name").dir, "odd:name");  // not a number: part of the path
  EXPECT_UPCYCLE_ERROR(train::parse_data_source("a:-1"), "positive", "");
  TrainOptions o;
  o.model = "m";
  o.data = {"d"};
  o.out = "r";
  train::validate_options(o);
  o.keep = 0;
  EXPECT_UPCYCLE_ERROR(train::validate_options(o), "--keep must be at least 1", "");
  o.keep = 1;
  o.init_optimizer = "from-dense";
  EXPECT_UPCYCLE_ERROR(train::validate_options(o), "--dense-optimizer", "");
  o.init_optimizer = "fresh";
  o.schedule = "linear";
  EXPECT_THROW(train::validate_options(o), Error);
}

}  // namespace
}  // namespace upcycle
