// Training checkpoints (see train_checkpoint.h). JSON numbers round-trip exactly (nlohmann prints
// doubles with max_digits10), so FLOPs and float biases come back bit for bit.
#include "train/train_checkpoint.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <system_error>
#include <type_traits>

#include "core/error.h"
#include "core/file_util.h"
#include "io/checkpoint.h"
#include "io/output_dir.h"
#include "model/save_model.h"
#include "train/optimizer_state.h"

namespace upcycle::train {
namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFormat = "upcycle-trainer-state";

template <typename T>
T field(const Json& j, const char* key, const std::string& file) {
  if (!j.contains(key)) throw Error(std::string("trainer state has no \"") + key + "\"", file);
  // A float where a count belongs is the wrong type: converting 9e63 to int64 is undefined (fuzz_trainer_state).
  if constexpr (std::is_integral_v<T>)
    if (!j.at(key).is_number_integer()) throw Error(std::string("trainer state field \"") + key + "\" has the wrong type", file);
  try {
    return j.at(key).get<T>();
  } catch (const Json::exception&) {
    throw Error(std::string("trainer state field \"") + key + "\" has the wrong type", file);
  }
}

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    auto step = checkpoint_step_of(entry.path().filename().string());
    if (step && entry.is_directory()) found.emplace_back(*step, entry.path());
  }
  if (ec) throw Error("cannot list checkpoints: " + ec.message(), dir.string());
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace

Json trainer_state_to_json(const TrainerState& s) {
  Json bias = Json::object();
  for (const auto& [layer, b] : s.expert_bias) bias[std::to_string(layer)] = b;
  Json out = {{"format", kStateFormat},
          {"version", 1},
          {"step", s.step},
          {"tokens", s.tokens},
          {"flops", s.flops},
          {"skipped_steps", s.skipped_steps},
          {"consecutive_nonfinite", s.consecutive_nonfinite},
          {"data", s.data},
          {"expert_bias", bias},
          {"options_digest", s.options_digest}};
  if (s.world_size != 1) out["world_size"] = s.world_size;  // absent: one process (the files before data parallel)
  return out;
}

TrainerState trainer_state_from_json(const Json& j, const std::string& file) {
  // A non-string "format" is a wrong format too (nlohmann's value() would throw its type_error: fuzz_trainer_state).
  if (!j.is_object() || !j.contains("format") || !j["format"].is_string() || j["format"].get<std::string>() != kStateFormat)
    throw Error(std::string("not a trainer state (format is not \"") + kStateFormat + "\")", file);
  TrainerState s;
  s.step = field<int64_t>(j, "step", file);
  s.tokens = field<int64_t>(j, "tokens", file);
  s.flops = field<double>(j, "flops", file);
  s.skipped_steps = field<int64_t>(j, "skipped_steps", file);
  s.consecutive_nonfinite = field<int64_t>(j, "consecutive_nonfinite", file);
  s.data = field<Json>(j, "data", file);
  s.options_digest = field<std::string>(j, "options_digest", file);
  if (j.contains("world_size")) s.world_size = field<int64_t>(j, "world_size", file);
  const Json bias = field<Json>(j, "expert_bias", file);
  if (!bias.is_object()) throw Error("trainer state field \"expert_bias\" has the wrong type", file);
  for (const auto& [key, values] : bias.items()) {
    int64_t layer = -1;
    auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), layer);
    if (ec != std::errc() || ptr != key.data() + key.size() || layer < 0 || !values.is_array())
      throw Error("trainer state has a malformed expert_bias entry \"" + key + "\"", file);
    auto& out = s.expert_bias[layer];
    for (const auto& v : values) {
      // Beyond float's range the conversion would be undefined: a malformed entry, not a bias.
      if (!v.is_number() || !(std::fabs(v.get<double>()) <= double(std::numeric_limits<float>::max())))
        throw Error("trainer state has a malformed expert_bias entry \"" + key + "\"", file);
      out.push_back(float(v.get<double>()));
    }
  }
  if (s.step < 0 || s.tokens < 0 || s.skipped_steps < 0 || s.consecutive_nonfinite < 0 || s.world_size < 1)
    throw Error("trainer state has negative counters", file);
  return s;
}

std::string checkpoint_dir_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  return name;
}

std::optional<int64_t> checkpoint_step_of(std::string_view name) {
  if (!name.starts_with("step-") || name.size() < 6) return std::nullopt;
  int64_t step = -1;
  const char* begin = name.data() + 5;
  const char* end = name.data() + name.size();
  auto [ptr, ec] = std::from_chars(begin, end, step);
  if (ec != std::errc() || ptr != end || step < 0) return std::nullopt;
  return step;
}

fs::path write_train_checkpoint(const fs::path& checkpoints_dir, const CheckpointContents& c,
                                const std::function<void()>& mid_write) {
  StagedDir staged(checkpoints_dir / checkpoint_dir_name(c.state.step), Overwrite::kReplace);
  staged.write([&](const fs::path& dir) {
    copy_side_files(c.side_files_from, dir);
    model::SaveModelOptions save;
    save.dtype = DType::kF32;  // the master weights themselves: resume is exact
    save.metadata = {{"upcycle_train_step", std::to_string(c.state.step)}};
    model::save_model(c.config, c.params, dir, save);
    if (mid_write) mid_write();
    save_optimizer_state(c.optimizer, dir / kOptimizerFile);
    write_text_file(dir / kTrainerStateFile, trainer_state_to_json(c.state).dump(2) + "\n");
  });
  staged.commit();
  return staged.destination();
}

std::optional<fs::path> find_latest_checkpoint(const fs::path& checkpoints_dir) {
  std::error_code ec;
  if (!fs::is_directory(checkpoints_dir, ec)) return std::nullopt;
  for (const auto& entry : fs::directory_iterator(checkpoints_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(".step-")) fs::remove_all(entry.path(), ec);  // an interrupted write's staging dir
  }
  auto found = list_checkpoints(checkpoints_dir);
  for (auto it = found.rbegin(); it != found.rend(); ++it)
    if (fs::is_regular_file(it->second / kTrainerStateFile, ec)) return it->second;
  return std::nullopt;
}

void prune_checkpoints(const fs::path& checkpoints_dir, int64_t keep) {
  auto found = list_checkpoints(checkpoints_dir);
  std::error_code ec;
  for (size_t i = 0; i + size_t(std::max<int64_t>(keep, 1)) < found.size(); ++i) {
    fs::remove_all(found[i].second, ec);
    if (ec) throw Error("cannot remove an old checkpoint: " + ec.message(), found[i].second.string());
  }
}

TrainerState read_trainer_state(const fs::path& checkpoint_dir) {
  const fs::path file = checkpoint_dir / kTrainerStateFile;
  Json j;
  try {
    j = Json::parse(read_text_file(file, "trainer state"));
  } catch (const Json::exception& e) {
    throw Error(std::string("trainer state is not valid JSON: ") + e.what(), file.string());
  }
  return trainer_state_from_json(j, file.string());
}

}  // namespace upcycle::train
