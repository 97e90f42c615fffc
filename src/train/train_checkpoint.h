// Training checkpoints: RUN_DIR/checkpoints/step-00000020/ holds everything a resumed run needs to
// continue bit for bit, and is an ordinary HF checkpoint for every other command:
//   config.json + model.safetensors   the fp32 master weights (model/save_model.h, F32: exact)
//   tokenizer*.json, generation_config.json, …   side files carried from the source model
//   optimizer.safetensors             AdamW moments and step (train/optimizer_state.h)
//   trainer_state.json                TrainerState below (step, tokens, FLOPs, data position, expert
//                                     biases, fault counters, options digest, world size when > 1)
// Each is written into a staging directory and renamed into place (io/output_dir.h StagedDir), so a
// step-* directory exists only complete; older ones are pruned only after the new one is committed.
// Several data-parallel processes hold the same state: rank 0 alone writes it (train/trainer.cpp).
// Non-goals: sharded or bf16 training checkpoints.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "io/model_config.h"
#include "model/parameters.h"
#include "train/adamw.h"

namespace upcycle::train {

inline constexpr const char* kTrainerStateFile = "trainer_state.json";
inline constexpr const char* kOptimizerFile = "optimizer.safetensors";

struct TrainerState {
  int64_t step = 0;                   // optimizer steps done, skipped ones included
  int64_t tokens = 0;                 // training tokens consumed
  double flops = 0;                   // training FLOPs spent (flops_per_token.train × tokens)
  int64_t skipped_steps = 0;          // steps skipped for a non-finite loss or gradient norm
  int64_t consecutive_nonfinite = 0;  // the current run of skipped steps
  Json data = Json::object();         // data::MixtureBatcher::state()
  std::map<int64_t, std::vector<float>> expert_bias;  // per MoE layer, when --expert-bias-rate > 0
  std::string options_digest;         // of the options a resume must keep (trainer_options.h)
  int64_t world_size = 1;             // data-parallel ranks that wrote it (the data position is global)
};

Json trainer_state_to_json(const TrainerState& state);
// Error naming `file` for a missing or mistyped field.
TrainerState trainer_state_from_json(const Json& json, const std::string& file);

std::string checkpoint_dir_name(int64_t step);                      // "step-00000020"
std::optional<int64_t> checkpoint_step_of(std::string_view dir_name);  // nullopt for other names

struct CheckpointContents {
  const ModelConfig& config;
  const model::TensorStore& params;
  const AdamW& optimizer;
  const TrainerState& state;
  std::filesystem::path side_files_from;  // the model directory whose tokenizer files are carried
};

// Writes checkpoints_dir/step-<state.step> atomically and returns it. `mid_write` (tests) runs after
// the weights are written and before the optimizer state. Errors name the file that failed.
std::filesystem::path write_train_checkpoint(const std::filesystem::path& checkpoints_dir,
                                             const CheckpointContents& contents,
                                             const std::function<void()>& mid_write = {});

// The newest complete checkpoint (a step-* directory with its trainer state), or nullopt. Leftover
// staging directories of an interrupted write (hidden siblings) are removed.
std::optional<std::filesystem::path> find_latest_checkpoint(const std::filesystem::path& checkpoints_dir);

// Removes all but the newest `keep` step-* directories.
void prune_checkpoints(const std::filesystem::path& checkpoints_dir, int64_t keep);

TrainerState read_trainer_state(const std::filesystem::path& checkpoint_dir);

}  // namespace upcycle::train
