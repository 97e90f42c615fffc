// A model on a backend whose memory the host cannot read (DeviceSimBackend: cpu ops, a fenced arena)
// runs through the same code paths as on cpu — loading (staged), forward, loss, backward, decoding,
// generation, saving — and gives bitwise the cpu results, with its host transfers counted: a training
// step's only readback is the loss the cross-entropy op returns.
// MoE models too: routing, its losses and statistics are backend ops, so an MoE layer's only readbacks
// are its routing index (offsets, counts, dropped) and its loss/statistics scalars, once per forward.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "backend/backend.h"
#include "backend/host_memory.h"
#include "io/model_config.h"
#include "model/generate.h"
#include "model/load_model.h"
#include "model/save_model.h"
#include "model/transformer.h"
#include "support/device_sim_backend.h"
#include "support/model_test_support.h"
#include "support/test_support.h"

namespace upcycle {
namespace {

namespace fs = std::filesystem;
using backend::BackendKind;
using model::Transformer;
using test::DeviceSimBackend;

std::unique_ptr<DeviceSimBackend> make_sim() {
  return std::make_unique<DeviceSimBackend>(backend::make_backend(BackendKind::kCpu));
}

// Bitwise equality of n floats at a cpu pointer and at a pointer of `be` (downloaded when needed).
void expect_bitwise(const float* cpu, backend::Backend& be, const float* other, size_t n, const char* what) {
  const auto host = backend::host_view(be, other, n);
  EXPECT_EQ(std::memcmp(cpu, host.data(), n * sizeof(float)), 0) << what << " differs from the cpu result";
}

const std::vector<int32_t> kIds = {3, 7, 1, 10, 0, 5, 5, 2, 9, 4};
const std::vector<int32_t> kTargets = {7, 1, 10, -1, 6, 5, 2, 9, 4, 8};
constexpr int64_t kB = 2, kT = 5;

// The cpu model with random parameters and its twin on the simulated device (parameters uploaded).
struct Twins {
  std::unique_ptr<backend::Backend> cpu = backend::make_backend(BackendKind::kCpu);
  std::unique_ptr<DeviceSimBackend> sim = make_sim();
  std::unique_ptr<Transformer> on_cpu, on_sim;

  explicit Twins(const ModelConfig& config) {
    on_cpu = std::make_unique<Transformer>(config, *cpu);
    on_sim = std::make_unique<Transformer>(config, *sim);
    test::fill_random(on_cpu->params(), 5, 0.5f);
    const backend::Buffer<float>& w = on_cpu->params().buffer();
    on_sim->params().buffer().upload({w.data(), w.size()});
    EXPECT_TRUE(sim->owns(on_sim->params().data()));
  }
};

TEST(DeviceSimBackend, HostReadsOfItsMemoryCrash) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto sim = make_sim();
  backend::Buffer<float> buffer(*sim, 16);
  std::vector<float> ones(16, 1.0f);
  buffer.upload(ones);
  EXPECT_EQ(buffer.to_host(), ones);  // through download: fine
  EXPECT_DEATH({ volatile float x = buffer.data()[3]; (void)x; }, "");  // directly: the fence
  EXPECT_EQ(sim->counts().uploads, 1);
  EXPECT_EQ(sim->counts().downloads, 1);
}

// `moe` (optional) sets the routing options of every MoE layer on both models; a training step may then
// download at most two small blocks per MoE layer (routing index, loss/statistics scalars).
void expect_training_step_matches_cpu(const ModelConfig& config, const model::MoeOptions* moe = nullptr) {
  Twins m(config);
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) moe_layers += config.is_moe_layer(l) ? 1 : 0;
  if (moe != nullptr) {
    m.on_cpu->set_moe_options(*moe);
    m.on_sim->set_moe_options(*moe);
    m.on_cpu->set_phase(model::Phase::kTraining, 11);
    m.on_sim->set_phase(model::Phase::kTraining, 11);
  }
  const int64_t T = kB * kT, V = config.vocab_size;
  double loss_cpu = 0, loss_sim = 0;
  m.on_cpu->zero_grads();
  m.on_sim->zero_grads();
  for (int micro = 0; micro < 2; ++micro) {  // two steps' worth: buffers are reused, not reallocated
    m.sim->reset_counts();
    const float* logits_cpu = m.on_cpu->forward(kIds.data(), kB, kT);
    const float* logits_sim = m.on_sim->forward(kIds.data(), kB, kT);
    loss_cpu = m.on_cpu->loss(kTargets.data());
    loss_sim = m.on_sim->loss(kTargets.data());
    m.on_cpu->backward();
    m.on_sim->backward();
    // The step's transfers: ids and targets up; down nothing for a dense model (the loss is the op's
    // return value), two small blocks per MoE layer.
    EXPECT_EQ(m.sim->counts().uploads, 2);
    EXPECT_LE(m.sim->counts().downloads, 2 * moe_layers);
    EXPECT_LE(m.sim->counts().download_bytes, moe_layers * int64_t(64 + 24 * config.num_experts));
    EXPECT_EQ(loss_sim, loss_cpu);
    EXPECT_EQ(m.on_sim->auxiliary_loss(), m.on_cpu->auxiliary_loss());
    expect_bitwise(logits_cpu, *m.sim, logits_sim, size_t(T * V), "logits");
    for (int64_t l = 0; l <= config.num_hidden_layers; ++l)
      expect_bitwise(m.on_cpu->hidden_states(l), *m.sim, m.on_sim->hidden_states(l), size_t(T * config.hidden_size),
                     "hidden state");
  }
  expect_bitwise(m.on_cpu->grads().data(), *m.sim, m.on_sim->grads().data(), m.on_cpu->grads().size(), "gradients");
}

TEST(DeviceMemory, DenseTrainingStepIsBitwiseCpuWithoutReadbacks) {
  for (Family family : {Family::kLlama, Family::kQwen3, Family::kQwen2}) {
    SCOPED_TRACE(std::string(family_model_type(family)));
    expect_training_step_matches_cpu(test::tiny_model_config(family));
  }
}

TEST(DeviceMemory, MoeTrainingStepIsBitwiseCpuWithFewReadbacks) {
  const ModelConfig dense = test::tiny_model_config(Family::kLlama);
  const ModelConfig mixtral = test::moe_twin(dense, Family::kMixtral, 4, 2);
  model::MoeOptions o = model::moe_options_from_config(mixtral);
  o.jitter = 0.1, o.aux_loss_coef = 0.01, o.z_loss_coef = 0.001, o.capacity_factor = 1.25;
  o.dirichlet_alpha_E = {0.5, 0.5, 0.5, 0.5}, o.dirichlet_coef = 0.1;
  expect_training_step_matches_cpu(mixtral, &o);
  model::MoeOptions e = model::moe_options_from_config(mixtral);
  e.mode = model::RoutingMode::kExpertChoice, e.capacity_factor = 2.0;
  expect_training_step_matches_cpu(mixtral, &e);
}

TEST(DeviceMemory, DecodeAndGenerateMatchCpu) {
  const ModelConfig config = test::tiny_model_config(Family::kQwen3);
  Twins m(config);
  const int64_t V = config.vocab_size, P = 4;
  m.on_cpu->reset_cache(8);
  m.on_sim->reset_cache(8);
  expect_bitwise(m.on_cpu->decode(kIds.data(), P), *m.sim, m.on_sim->decode(kIds.data(), P), size_t(P * V),
                 "prompt logits");
  expect_bitwise(m.on_cpu->decode(kIds.data() + P, 1), *m.sim, m.on_sim->decode(kIds.data() + P, 1), size_t(V),
                 "next-token logits");

  model::GenerateOptions options;
  options.max_new_tokens = 6;
  options.sampling.temperature = 0.8;
  options.seed = 3;
  const std::vector<int32_t> prompt(kIds.begin(), kIds.begin() + P);
  m.sim->reset_counts();
  const model::GenerateResult on_sim = model::generate(*m.on_sim, prompt, options);
  EXPECT_EQ(on_sim.tokens, model::generate(*m.on_cpu, prompt, options).tokens);
  // Sampling reads one row of V logits per generated token, nothing else.
  EXPECT_EQ(m.sim->counts().downloads, int64_t(on_sim.tokens.size()));
  EXPECT_EQ(m.sim->counts().download_bytes, int64_t(on_sim.tokens.size()) * V * int64_t(sizeof(float)));
}

TEST(DeviceMemory, LoadingStagesAndSavingDownloadsBitwise) {
  const ModelConfig config = test::tiny_model_config(Family::kLlama);
  test::ScratchDir scratch;
  model::TensorStore host = model::TensorStore::for_config(config, backend::host_memory());
  test::fill_random(host, 9, 0.5f);
  for (DType dtype : {DType::kF32, DType::kBF16}) {  // bf16 goes through the converting chunk path
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    const fs::path dir = scratch / std::string(dtype_name(dtype));
    fs::create_directory(dir);
    model::SaveModelOptions options;
    options.dtype = dtype;
    model::save_model(config, host, dir, options);
    auto cpu = backend::make_backend(BackendKind::kCpu);
    auto sim = make_sim();
    auto on_cpu = model::load_transformer(config, dir, *cpu);
    auto on_sim = model::load_transformer(config, dir, *sim);
    EXPECT_EQ(sim->counts().uploads, int64_t(config.num_hidden_layers * 9 + 3) + 1)
        << "one upload per weight (all fit one staging chunk) plus inv_freq";
    expect_bitwise(on_cpu->params().data(), *sim, on_sim->params().data(), on_cpu->params().size(), "loaded weights");

    // Saving the device model downloads each weight once and writes the same bytes.
    const fs::path again = scratch / (std::string(dtype_name(dtype)) + "_again");
    fs::create_directory(again);
    sim->reset_counts();
    model::save_model(config, on_sim->params(), again, options);
    EXPECT_EQ(sim->counts().downloads, int64_t(on_sim->params().specs().size()));
    for (const char* file : {"config.json", "model.safetensors"})
      EXPECT_EQ(test::read_bytes(dir / file), test::read_bytes(again / file)) << file;
  }
}

}  // namespace
}  // namespace upcycle
