// The bad-input catalogue: every malformed file, bad flag or unwritable destination must give exactly
// one line `upcycle: error: …` on stderr naming the file and the problem, exit status 2, and leave no
// output (not even a temporary directory) behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/json.h"
#include "io/checkpoint_writer.h"
#include "io/model_config.h"
#include "io/model_presets.h"
#include "io/weight_table.h"
#include "support/test_support.h"

namespace upcycle {
namespace {
namespace fs = std::filesystem;
using test::ScratchDir;

struct BadCase {
  std::string name;
  // Prepares the bad input inside `root` (which holds a valid tiny llama at root/good) and returns
  // the upcycle arguments to run.
  std::function<std::vector<std::string>(const fs::path& root)> prepare;
  std::vector<std::string> expected;  // substrings of the error line (problem and file)
  test::RunLimits limits;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

fs::path copy_good(const fs::path& root, const std::string& name) {
  fs::copy(root / "good", root / name, fs::copy_options::recursive);
  return root / name;
}

// A model dir whose config is the good one and whose weights file is written by hand.
std::vector<std::string> raw_weights(const fs::path& root, const std::string& header, const std::string& data) {
  fs::path dir = root / "raw";
  fs::create_directory(dir);
  fs::copy_file(root / "good" / "config.json", dir / "config.json");
  test::write_safetensors_raw(dir / "model.safetensors", header, data);
  return {"inspect", dir.string()};
}

// Rewrites config.json of a copy of the good model through `edit`.
std::vector<std::string> edited_config(const fs::path& root, const std::function<void(Json&)>& edit) {
  fs::path dir = copy_good(root, "edited");
  Json config = read_json_file(dir / "config.json", "config");
  edit(config);
  test::write_bytes(dir / "config.json", config.dump(2));
  return {"inspect", dir.string()};
}

// Writes a full tiny-llama checkpoint (zeros) whose tensor list is the expected one, edited.
std::vector<std::string> edited_tensors(const fs::path& root, const std::function<void(std::vector<TensorDecl>&)>& edit) {
  fs::path dir = copy_good(root, "tensors");
  fs::remove(dir / "model.safetensors");
  ModelConfig config = read_model_config(dir);
  std::vector<TensorDecl> decls;
  for (const auto& t : disk_tensors(config, ExpertLayout::kPerExpert)) decls.push_back({t.name, DType::kBF16, t.shape});
  edit(decls);
  CheckpointWriter writer(dir, decls);
  for (const auto& d : decls) writer.write(d.name, std::vector<std::byte>(shape_numel(d.shape) * 2));
  writer.finish();
  return {"inspect", dir.string()};
}

std::vector<std::string> sharded_copy(const fs::path& root, const std::function<void(const fs::path&)>& edit) {
  fs::path dir = root / "sharded";
  auto r = test::run_upcycle({"init", "--arch", "llama", "--preset", "tiny", "--max-shard-size", "40KB", dir.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  edit(dir);
  return {"inspect", dir.string()};
}

std::vector<BadCase> catalogue() {
  const std::string f32_tensor = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  return {
      {"truncated_file", [](const fs::path& root) {
         auto args = raw_weights(root, "", "");
         test::write_bytes(root / "raw" / "model.safetensors", "abc");
         return args;
       }, {"too short", "model.safetensors"}},
      {"header_length_past_end", [](const fs::path& root) {
         auto args = raw_weights(root, "{}", "");
         std::string bytes = test::read_bytes(root / "raw" / "model.safetensors");
         bytes[0] = '\x70';  // claims a 112-byte header in a 10-byte file
         test::write_bytes(root / "raw" / "model.safetensors", bytes);
         return args;
       }, {"header", "model.safetensors"}},
      {"header_not_json", [](const fs::path& root) { return raw_weights(root, R"({"w": {"dtype": )", ""); },
       {"JSON", "model.safetensors"}},
      {"header_not_object", [](const fs::path& root) { return raw_weights(root, "[1, 2]", ""); },
       {"object", "model.safetensors"}},
      {"overlapping_offsets", [](const fs::path& root) {
         return raw_weights(root, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                            std::string(12, '\0'));
       }, {"overlap", "model.safetensors"}},
      {"offsets_past_end", [](const fs::path& root) {
         return raw_weights(root, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0'));
       }, {"w", "model.safetensors"}},
      {"size_does_not_match_shape", [](const fs::path& root) {
         return raw_weights(root, R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,8]}})", std::string(8, '\0'));
       }, {"w", "model.safetensors"}},
      {"unknown_dtype", [](const fs::path& root) {
         return raw_weights(root, R"({"w":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0'));
       }, {"F17", "model.safetensors"}},
      {"fp8_dtype_unsupported", [](const fs::path& root) {
         return raw_weights(root, R"({"w":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", std::string(8, '\0'));
       }, {"unsupported dtype", "F8_E4M3", "model.safetensors"}},
      {"duplicate_tensor_name", [f32_tensor](const fs::path& root) {
         return raw_weights(root, "{" + f32_tensor + "," + f32_tensor + "}", std::string(8, '\0'));
       }, {"w", "model.safetensors"}},
      {"trailing_bytes_after_last_tensor", [f32_tensor](const fs::path& root) {
         return raw_weights(root, "{" + f32_tensor + "}", std::string(12, '\0'));
       }, {"model.safetensors"}},
      {"negative_dimension", [](const fs::path& root) {
         return raw_weights(root, R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, '\0'));
       }, {"w", "model.safetensors"}},
      {"metadata_value_not_string", [f32_tensor](const fs::path& root) {
         return raw_weights(root, R"({"__metadata__":{"format":1},)" + f32_tensor + "}", std::string(8, '\0'));
       }, {"metadata", "model.safetensors"}},
      {"mis_shaped_tensor", [](const fs::path& root) {
         return edited_tensors(root, [](std::vector<TensorDecl>& d) {
           for (auto& t : d)
             if (t.name == "model.layers.1.self_attn.q_proj.weight") t.shape = {64, 32};
         });
       }, {"model.layers.1.self_attn.q_proj.weight", "[64, 32]", "tensors"}},
      {"missing_tensor", [](const fs::path& root) {
         return edited_tensors(root, [](std::vector<TensorDecl>& d) {
           std::erase_if(d, [](const TensorDecl& t) { return t.name == "model.norm.weight"; });
         });
       }, {"missing", "model.norm.weight", "tensors"}},
      {"unexpected_tensor", [](const fs::path& root) {
         return edited_tensors(root, [](std::vector<TensorDecl>& d) { d.push_back({"model.layers.7.extra", DType::kBF16, {4}}); });
       }, {"unexpected", "model.layers.7.extra", "tensors"}},
      {"missing_shard", [](const fs::path& root) {
         return sharded_copy(root, [](const fs::path& dir) {
           for (const auto& e : fs::directory_iterator(dir))
             if (e.path().filename().string().rfind("model-00002-of-", 0) == 0) fs::remove(e.path());
         });
       }, {"model-00002-of-"}},
      {"index_names_missing_tensor", [](const fs::path& root) {
         return sharded_copy(root, [](const fs::path& dir) {
           Json index = read_json_file(dir / "model.safetensors.index.json", "index");
           index["weight_map"]["model.layers.0.mlp.extra.weight"] = index["weight_map"]["model.embed_tokens.weight"];
           test::write_bytes(dir / "model.safetensors.index.json", index.dump());
         });
       }, {"model.layers.0.mlp.extra.weight"}},
      {"index_not_json", [](const fs::path& root) {
         return sharded_copy(root, [](const fs::path& dir) { test::write_bytes(dir / "model.safetensors.index.json", "{weight_map"); });
       }, {"JSON", "model.safetensors.index.json"}},
      {"config_missing_required_key", [](const fs::path& root) {
         return edited_config(root, [](Json& c) { c.erase("hidden_size"); });
       }, {"hidden_size", "config.json"}},
      {"unsupported_family", [](const fs::path& root) {
         return edited_config(root, [](Json& c) { c["model_type"] = "gpt2"; });
       }, {"gpt2", "llama", "qwen3_moe", "config.json"}},
      {"config_inconsistent_heads", [](const fs::path& root) {
         return edited_config(root, [](Json& c) { c["num_attention_heads"] = 5; c.erase("head_dim"); });
       }, {"num_attention_heads", "config.json"}},
      {"config_not_json", [](const fs::path& root) {
         fs::path dir = copy_good(root, "badjson");
         test::write_bytes(dir / "config.json", "{\"model_type\": \"llama\",");
         return std::vector<std::string>{"inspect", dir.string()};
       }, {"JSON", "config.json"}},
      {"config_missing", [](const fs::path& root) {
         fs::path dir = copy_good(root, "noconfig");
         fs::remove(dir / "config.json");
         return std::vector<std::string>{"inspect", dir.string()};
       }, {"no config.json", "noconfig"}},
      {"directory_does_not_exist", [](const fs::path& root) {
         return std::vector<std::string>{"inspect", (root / "nowhere").string()};
       }, {"does not exist", "nowhere"}},
      {"init_unwritable_output_dir", [](const fs::path& root) {
         test::write_bytes(root / "plainfile", "x");
         return std::vector<std::string>{"init", "--arch", "llama", (root / "plainfile" / "out").string()};
       }, {"plainfile"}},
      {"init_existing_output_without_force", [](const fs::path& root) {
         return std::vector<std::string>{"init", "--arch", "llama", (root / "good").string()};
       }, {"already exists", "--force", "good"}},
      {"init_disk_full", [](const fs::path& root) {
         return std::vector<std::string>{"init", "--arch", "llama", "--preset", "tiny", (root / "full").string()};
       }, {"full/model.safetensors"}, {.file_size = 64 * 1024}},
      {"init_unknown_flag", [](const fs::path& root) {
         return std::vector<std::string>{"init", "--arch", "llama", "--bogus", "1", (root / "x").string()};
       }, {"--bogus"}},
      {"init_bad_number", [](const fs::path& root) {
         return std::vector<std::string>{"init", "--arch", "llama", "--seed", "abc", (root / "x").string()};
       }, {"--seed", "abc"}},
      {"init_unknown_preset", [](const fs::path& root) {
         return std::vector<std::string>{"init", "--arch", "llama", "--preset", "huge", (root / "x").string()};
       }, {"huge", "tiny"}},
      {"init_unsupported_family", [](const fs::path& root) {
         return std::vector<std::string>{"init", "--arch", "gpt2", (root / "x").string()};
       }, {"gpt2", "llama"}},
      {"init_top_k_above_experts", [](const fs::path& root) {
         return std::vector<std::string>{"init", "--arch", "mixtral", "--experts", "2", "--top-k", "3", (root / "x").string()};
       }, {"3", "2"}},
  };
}

class BadInput : public ::testing::TestWithParam<BadCase> {};

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(dir)) names.push_back(e.path().lexically_relative(dir).string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST_P(BadInput, OneLineErrorExitTwoNoOutput) {
  const BadCase& c = GetParam();
  ScratchDir root;
  auto good = test::run_upcycle({"init", "--arch", "llama", "--preset", "tiny", (root / "good").string()});
  ASSERT_EQ(good.exit_code, 0) << good.err;
  auto args = c.prepare(root.path());
  auto before = listing(root.path());
  auto r = test::run_upcycle(args, c.limits);
  if (std::getenv("UPCYCLE_SHOW_ERRORS")) std::fprintf(stderr, "%-40s %s", c.name.c_str(), r.err.c_str());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  ASSERT_TRUE(r.err.rfind("upcycle: error: ", 0) == 0) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "error must be one line: " << r.err;
  for (const auto& s : c.expected) EXPECT_NE(r.err.find(s), std::string::npos) << "missing '" << s << "' in: " << r.err;
  EXPECT_EQ(listing(root.path()), before) << "the failed command left files behind";
}

INSTANTIATE_TEST_SUITE_P(Catalogue, BadInput, ::testing::ValuesIn(catalogue()),
                         [](const auto& info) { return info.param.name; });

TEST(BadInputCatalogue, HasAtLeastTwentyCases) { EXPECT_GE(catalogue().size(), 20u); }

}  // namespace
}  // namespace upcycle
