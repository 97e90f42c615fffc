// tokenizer.json (+ tokenizer_config.json) → GGUF tokenizer metadata (see gguf_tokenizer.h), following
// convert_hf_to_gguf.py's get_vocab_base and gguf-py's SpecialVocab: tokens in id order, NORMAL for
// vocab entries, CONTROL for special added tokens, USER_DEFINED for other added tokens, "[PADn]"
// UNUSED for ids without a token; merges as "a b"; special ids from tokenizer_config.json (else
// config.json); add_bos/add_eos from the TemplateProcessing post-processor.
#include <map>

#include "core/error.h"
#include "core/file_util.h"
#include "data/gguf_pre_tokenizers.h"
#include "data/gguf_tokenizer.h"

namespace upcycle::data {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;  // hash-free std::map JSON: a 150k vocab object, key order irrelevant

constexpr int32_t kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5;  // llama.cpp token types

Json read_json(const fs::path& path, const char* what) {
  try {
    return Json::parse(read_text_file(path, what));
  } catch (const Json::exception& e) {
    throw Error(std::string(what) + " is not valid JSON: " + e.what(), path.string());
  }
}

// A token named in tokenizer_config.json: a string, an {"content": …} object, or null/absent.
std::optional<std::string> config_token(const Json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const Json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

class Exporter {
 public:
  Exporter(const fs::path& dir, int64_t vocab_size) : dir_(dir), file_((dir / "tokenizer.json").string()), vocab_size_(vocab_size) {}

  [[noreturn]] void fail(const std::string& what) const { throw Error(what, file_); }

  void add(GgufWriter& w) {
    const Json tok = read_json(file_, "tokenizer.json");
    const Json& model = tok.contains("model") ? tok["model"] : Json();
    if (!model.is_object() || model.value("type", "") != "BPE")
      fail("only byte-level BPE tokenizers export to GGUF (model.type must be BPE); --skip-tokenizer exports the model alone");
    if (tok.contains("normalizer") && !tok["normalizer"].is_null() && tok["normalizer"].value("type", "") != "NFC")
      fail("normalizer " + tok["normalizer"].value("type", "?") + " has no GGUF form (llama.cpp normalises nothing)");
    const auto split = gguf_split_of(tok.value("pre_tokenizer", Json()));
    const bool ignore_merges = model.value("ignore_merges", false);
    const GgufPreTokenizer* pre = nullptr;
    for (const auto& p : kGgufPreTokenizers)
      if (split && p.split == *split && p.ignore_merges == ignore_merges && !pre) pre = &p;
    if (!pre)
      fail("the pre_tokenizer (with ignore_merges " + std::string(ignore_merges ? "true" : "false") +
           ") is not one llama.cpp names (Llama-3, Qwen2, SmolLM/StarCoder digits, GPT-2); --skip-tokenizer exports the model alone");
    read_tokens(tok, model);
    const Json config = fs::exists(dir_ / "tokenizer_config.json") ? read_json(dir_ / "tokenizer_config.json", "tokenizer_config.json") : Json::object();
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", std::string(pre->name));
    w.add_strings("tokenizer.ggml.tokens", tokens_);
    w.add_i32s("tokenizer.ggml.token_type", types_);
    w.add_strings("tokenizer.ggml.merges", merges(model));
    add_special_ids(w, config);
    add_bos_eos_flags(w, tok);
    if (config.contains("chat_template") && config["chat_template"].is_string())
      w.add_string("tokenizer.chat_template", config["chat_template"].get<std::string>());
  }

 private:
  void place(int64_t id, const std::string& token, int32_t type) {
    if (id < 0) fail("token '" + token + "' has a negative id");
    if (id >= vocab_size_)
      fail("token '" + token + "' has id " + std::to_string(id) + " but the model's embedding has " +
           std::to_string(vocab_size_) + " rows");
    if (types_[size_t(id)] != kUnused && tokens_[size_t(id)] != token)
      fail("id " + std::to_string(id) + " is both '" + tokens_[size_t(id)] + "' and '" + token + "'");
    tokens_[size_t(id)] = token;
    types_[size_t(id)] = type;
    ids_[token] = id;
  }

  void read_tokens(const Json& tok, const Json& model) {
    tokens_.resize(size_t(vocab_size_));
    types_.assign(size_t(vocab_size_), kUnused);
    for (int64_t i = 0; i < vocab_size_; ++i) tokens_[size_t(i)] = "[PAD" + std::to_string(i) + "]";
    if (!model.contains("vocab") || !model["vocab"].is_object()) fail("model.vocab must be an object");
    for (const auto& [token, id] : model["vocab"].items()) {
      if (!id.is_number_integer()) fail("model.vocab['" + token + "'] must be an integer id");
      place(id.get<int64_t>(), token, kNormal);
    }
    for (const Json& a : tok.value("added_tokens", Json::array())) {
      const std::string content = a.value("content", "");
      // HF gives an added token already in the vocab the vocab's id; others keep their listed id.
      const int64_t id = ids_.count(content) ? ids_[content] : a.value("id", int64_t(-1));
      place(id, content, a.value("special", false) ? kControl : kUserDefined);
    }
  }

  std::vector<std::string> merges(const Json& model) const {
    std::vector<std::string> out;
    for (const Json& m : model.value("merges", Json::array())) {
      if (m.is_string()) out.push_back(m.get<std::string>());
      else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
        out.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      else fail("model.merges holds an entry that is neither \"a b\" nor [a, b]");
    }
    return out;
  }

  void add_special_ids(GgufWriter& w, const Json& config) {
    const Json model_config = fs::exists(dir_ / "config.json") ? read_json(dir_ / "config.json", "config.json") : Json::object();
    const std::pair<const char*, const char*> keys[] = {{"bos_token", "bos"}, {"eos_token", "eos"}, {"unk_token", "unknown"},
                                                         {"pad_token", "padding"}};
    for (auto [config_key, gguf_key] : keys) {
      std::optional<int64_t> id;
      if (auto token = config_token(config, config_key); token && ids_.count(*token)) id = ids_[*token];
      const std::string id_key = std::string(config_key).substr(0, 3) + "_token_id";  // bos_token_id, …
      if (!id && model_config.contains(id_key) && model_config[id_key].is_number_integer()) id = model_config[id_key].get<int64_t>();
      if (id && *id >= 0 && *id < vocab_size_)
        w.add_u32("tokenizer.ggml." + std::string(gguf_key) + "_token_id", static_cast<uint32_t>(*id));
    }
  }

  // llama.cpp adds BOS/EOS when the flags say so; HF does it in a TemplateProcessing post-processor.
  void add_bos_eos_flags(GgufWriter& w, const Json& tok) {
    bool bos = false, eos = false, seen_a = false;
    const Json post = tok.value("post_processor", Json());
    if (post.is_object() && post.value("type", "") == "TemplateProcessing")
      for (const Json& item : post.value("single", Json::array())) {
        if (item.contains("Sequence")) seen_a = true;
        else if (item.contains("SpecialToken")) (seen_a ? eos : bos) = true;
      }
    w.add_bool("tokenizer.ggml.add_bos_token", bos);
    w.add_bool("tokenizer.ggml.add_eos_token", eos);
  }

  fs::path dir_;
  std::string file_;
  int64_t vocab_size_;
  std::vector<std::string> tokens_;
  std::vector<int32_t> types_;
  std::map<std::string, int64_t> ids_;
};

}  // namespace

void add_gguf_tokenizer_metadata(const fs::path& model_dir, int64_t vocab_size, GgufWriter& writer) {
  Exporter(model_dir, vocab_size).add(writer);
}

}  // namespace upcycle::data
