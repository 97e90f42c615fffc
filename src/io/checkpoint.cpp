// Checkpoint directories (see checkpoint.h): one model.safetensors, or shards named by the index.
// The index is parsed into nlohmann::json (std::map objects): big MoE indexes list ~100k tensors and
// ordered_json would insert them in quadratic time. Shard names from the index are used only as plain
// file names inside the directory, so an index cannot point outside it. Index/shard mismatches are
// reported against the index (it is what lists tensors), a tensor in two shards against the second shard.
#include "io/checkpoint.h"

#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "core/error.h"
#include "core/file_util.h"

namespace upcycle {
namespace fs = std::filesystem;

namespace {

using WeightMap = std::map<std::string, std::string, std::less<>>;  // tensor name -> shard file name

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

nlohmann::json parse_index(const fs::path& index_path) {
  std::string text = read_text_file(index_path, "checkpoint index");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for numbers like 1e999
    std::string detail = e.what();
    // nlohmann prefixes "[json.exception.parse_error.101] "; the byte position is the useful part.
    if (auto pos = detail.find("] "); pos != std::string::npos) detail = detail.substr(pos + 2);
    throw Error("checkpoint index is not valid JSON: " + detail, index_path.string());
  }
}

WeightMap read_weight_map(const fs::path& index_path) {
  const std::string file = index_path.string();
  nlohmann::json index = parse_index(index_path);
  if (!index.is_object()) throw Error("checkpoint index is not a JSON object", file);
  if (index.contains("metadata") && !index.at("metadata").is_object())
    throw Error("checkpoint index has a metadata field that is not an object", file);
  if (!index.contains("weight_map") || !index.at("weight_map").is_object())
    throw Error("checkpoint index has no weight_map object", file);
  WeightMap weight_map;
  for (const auto& [name, shard] : index.at("weight_map").items()) {
    if (!shard.is_string()) throw Error("weight_map entry for tensor '" + name + "' is not a string", file);
    const auto& shard_name = shard.get_ref<const std::string&>();
    if (!is_plain_file_name(shard_name))
      throw Error("weight_map puts tensor '" + name + "' in '" + shard_name + "', which is not a plain file name",
                  file);
    weight_map.emplace(name, shard_name);
  }
  if (weight_map.empty()) throw Error("checkpoint index has an empty weight_map", file);
  return weight_map;
}

// Opens each distinct shard once, in file name order (model-00001…, model-00002…).
std::vector<SafetensorsFile> open_shards(const fs::path& dir, const WeightMap& weight_map) {
  std::set<std::string> names;
  for (const auto& [tensor, shard] : weight_map) names.insert(shard);
  std::vector<SafetensorsFile> shards;
  for (const auto& name : names) {
    fs::path path = dir / name;
    std::error_code ec;
    if (!fs::exists(path, ec))
      throw Error("shard " + name + " does not exist but " + kIndexFileName + " names it", path.string());
    shards.push_back(SafetensorsFile::open(path));
  }
  return shards;
}

std::map<std::string, TensorRef, std::less<>> collect_tensors(const std::vector<SafetensorsFile>& shards) {
  std::map<std::string, TensorRef, std::less<>> tensors;
  for (const auto& shard : shards) {
    for (const auto& info : shard.tensors()) {
      auto [it, inserted] = tensors.emplace(info.name, TensorRef{&shard, &info});
      if (!inserted)
        throw Error("tensor '" + info.name + "' is in two shards: " + it->second.file->path().filename().string() +
                        " and " + shard.path().filename().string(),
                    shard.path().string());
    }
  }
  return tensors;
}

void check_against_index(const std::map<std::string, TensorRef, std::less<>>& tensors, const WeightMap& weight_map,
                         const fs::path& index_path) {
  for (const auto& [name, shard] : weight_map) {
    auto it = tensors.find(name);
    if (it == tensors.end() || it->second.file->path().filename() != shard)
      throw Error("index names tensor '" + name + "' in shard " + shard + " but " + shard + " does not contain it",
                  index_path.string());
  }
  // Every indexed tensor was found in its own shard and no tensor is in two shards, so equal counts
  // leave only tensors the index does not list; name the first.
  if (tensors.size() == weight_map.size()) return;
  for (const auto& [name, ref] : tensors)
    if (!weight_map.contains(name))
      throw Error("tensor '" + name + "' in shard " + ref.file->path().filename().string() + " is not listed in " +
                      kIndexFileName,
                  index_path.string());
}

}  // namespace

Checkpoint Checkpoint::open(const fs::path& dir) {
  std::error_code ec;
  auto status = fs::status(dir, ec);
  if (!fs::exists(status)) throw Error("checkpoint directory does not exist", dir.string());
  if (!fs::is_directory(status)) throw Error("checkpoint path is not a directory", dir.string());

  Checkpoint checkpoint;
  checkpoint.dir_ = dir;
  WeightMap weight_map;
  if (fs::exists(dir / kSingleFileName, ec)) {
    checkpoint.shards_.push_back(SafetensorsFile::open(dir / kSingleFileName));
  } else if (fs::exists(dir / kIndexFileName, ec)) {
    checkpoint.sharded_ = true;
    weight_map = read_weight_map(dir / kIndexFileName);
    checkpoint.shards_ = open_shards(dir, weight_map);
  } else {
    throw Error(std::string("no ") + kSingleFileName + " or " + kIndexFileName + " in this directory", dir.string());
  }
  // TensorRefs point into shards_, which no longer changes (moving the vector keeps its elements in place).
  checkpoint.tensors_ = collect_tensors(checkpoint.shards_);
  if (checkpoint.sharded_) check_against_index(checkpoint.tensors_, weight_map, dir / kIndexFileName);
  return checkpoint;
}

const TensorRef* Checkpoint::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

uint64_t Checkpoint::total_tensor_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, ref] : tensors_) total += ref.info->nbytes();
  return total;
}

void copy_side_files(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(from, ec)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    if (name == "config.json" || name == kIndexFileName || name.starts_with(".")) continue;
    const auto ext = entry.path().extension().string();
    if (ext == ".json" || ext == ".txt" || ext == ".model" || ext == ".jinja" || ext == ".tiktoken") {
      fs::copy_file(entry.path(), to / name, fs::copy_options::overwrite_existing, ec);
      if (ec) throw Error("cannot copy " + name + ": " + ec.message(), (to / name).string());
    }
  }
  if (ec) throw Error("cannot list the checkpoint directory: " + ec.message(), from.string());
}

}  // namespace upcycle
