// GGUF tokenizer metadata → tokenizer.json / tokenizer_config.json (see gguf_tokenizer.h). Written by
// hand, one vocab entry and one merge per line in id / rank order, like bpe_tokenizer_json.cpp: a
// 150k vocab needs no ordered-map inserts and the output is diffable and byte-identical across runs.
#include "data/gguf_tokenizer.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>

#include "core/error.h"
#include "data/byte_level_bpe.h"
#include "data/gguf_pre_tokenizers.h"
#include "data/unicode_text.h"

namespace upcycle::data {
namespace {

using Plain = nlohmann::ordered_json;

constexpr int64_t kControl = 3;      // llama.cpp LLAMA_TOKEN_TYPE_CONTROL
constexpr int64_t kUserDefined = 4;  // LLAMA_TOKEN_TYPE_USER_DEFINED

std::string quoted(const std::string& s) { return Plain(s).dump(); }

class Builder {
 public:
  explicit Builder(const GgufFile& f) : f_(f) {}

  [[noreturn]] void fail(const std::string& what) const { throw Error(what, f_.path().string()); }

  GgufTokenizerFiles build() {
    const auto model = f_.get_string("tokenizer.ggml.model");
    if (!model) fail("missing metadata key 'tokenizer.ggml.model'");
    if (*model != "gpt2")
      fail("tokenizer model '" + *model + "' (key 'tokenizer.ggml.model') is not supported: upcycle rebuilds byte-level "
           "BPE ('gpt2') tokenizers; --skip-tokenizer imports the model without one");
    pre_ = &pre_tokenizer();
    read_vocab();
    read_merges();
    read_flags();
    return {tokenizer_json(), tokenizer_config_json()};
  }

 private:
  const GgufPreTokenizer& pre_tokenizer() const {
    const auto pre = f_.get_string("tokenizer.ggml.pre");
    std::string names;
    for (const auto& p : kGgufPreTokenizers) names += (names.empty() ? "" : ", ") + std::string(p.name);
    if (!pre) fail("missing metadata key 'tokenizer.ggml.pre' (the pre-tokenizer; upcycle knows " + names + ")");
    for (const auto& p : kGgufPreTokenizers)
      if (p.name == *pre) return p;
    fail("pre-tokenizer '" + *pre + "' (key 'tokenizer.ggml.pre') is not supported (upcycle knows " + names + ")");
  }

  // Byte-level vocabularies spell every token in GPT-2's printable byte alphabet; llama.cpp's
  // converter stores user-defined added tokens as their decoded text instead, so any token with a
  // character outside the alphabet is re-spelled from its UTF-8 bytes (transformers does the same).
  std::string vocab_spelling(const std::string& token, size_t id, bool& respelled) const {
    if (auto bad = find_invalid_utf8(token))
      fail("token " + std::to_string(id) + " of key 'tokenizer.ggml.tokens' is not valid UTF-8 (byte " +
           std::to_string(*bad) + ")");
    respelled = false;
    for (size_t i = 0; i < token.size();)
      if (byte_from_unicode(next_code_point(token, i)) < 0) respelled = true;
    return respelled ? to_byte_level(token) : token;
  }

  void read_vocab() {
    tokens_ = f_.string_array("tokenizer.ggml.tokens");
    if (tokens_.empty()) fail("key 'tokenizer.ggml.tokens' is empty");
    if (f_.find("tokenizer.ggml.token_type")) {
      types_ = f_.int_array("tokenizer.ggml.token_type");
      if (types_.size() < tokens_.size())
        fail("key 'tokenizer.ggml.token_type' has " + std::to_string(types_.size()) + " entries for " +
             std::to_string(tokens_.size()) + " tokens");
    }
    spelled_.resize(tokens_.size());
    respelled_.resize(tokens_.size());
    for (size_t id = 0; id < tokens_.size(); ++id) {
      bool respelled = false;
      spelled_[id] = vocab_spelling(tokens_[id], id, respelled);
      respelled_[id] = respelled;
      if (!ids_.emplace(spelled_[id], int32_t(id)).second)
        fail("token " + std::to_string(id) + " '" + tokens_[id] + "' of key 'tokenizer.ggml.tokens' repeats token " +
             std::to_string(ids_[spelled_[id]]));
    }
  }

  void read_merges() {
    const std::vector<std::string> merges = f_.string_array("tokenizer.ggml.merges");
    merges_.reserve(merges.size());
    for (size_t k = 0; k < merges.size(); ++k) {
      const std::string& m = merges[k];
      const size_t space = m.find(' ', 1);  // as llama.cpp: a token may itself start with a space
      if (space == std::string::npos) fail("merge " + std::to_string(k) + " '" + m + "' of key 'tokenizer.ggml.merges' has no space");
      std::string left = m.substr(0, space), right = m.substr(space + 1);
      for (const std::string& token : {left, right, left + right}) {
        if (!ids_.count(token))
          fail("merge " + std::to_string(k) + " '" + m + "' of key 'tokenizer.ggml.merges' needs token '" + token +
               "', which is not in the vocabulary");
      }
      merges_.emplace_back(std::move(left), std::move(right));
    }
  }

  std::optional<int64_t> token_id(const char* key) const {
    auto id = f_.get_uint(key);
    if (!id) return std::nullopt;
    if (*id >= tokens_.size())
      fail("key '" + std::string(key) + "' is " + std::to_string(*id) + ", outside the " + std::to_string(tokens_.size()) +
           " tokens");
    return static_cast<int64_t>(*id);
  }

  void read_flags() {
    bos_ = token_id("tokenizer.ggml.bos_token_id");
    eos_ = token_id("tokenizer.ggml.eos_token_id");
    unk_ = token_id("tokenizer.ggml.unknown_token_id");
    pad_ = token_id("tokenizer.ggml.padding_token_id");
    add_bos_ = f_.get_bool("tokenizer.ggml.add_bos_token").value_or(pre_->add_bos);
    add_eos_ = f_.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
    if (add_bos_ && !bos_) fail("key 'tokenizer.ggml.add_bos_token' is true but 'tokenizer.ggml.bos_token_id' is absent");
    if (add_eos_ && !eos_) fail("key 'tokenizer.ggml.add_eos_token' is true but 'tokenizer.ggml.eos_token_id' is absent");
  }

  // TemplateProcessing adding BOS/EOS as llama.cpp's add_bos / add_eos do.
  Plain post_processor_json() const {
    Plain single = Plain::array(), pair = Plain::array(), specials = Plain::object();
    auto special = [&](int64_t id) {
      const std::string& t = tokens_[size_t(id)];
      specials[t] = {{"id", t}, {"ids", {id}}, {"tokens", {t}}};
      return Plain{{"SpecialToken", {{"id", t}, {"type_id", 0}}}};
    };
    auto sequence = [](const char* id, int type) { return Plain{{"Sequence", {{"id", id}, {"type_id", type}}}}; };
    if (add_bos_) single.push_back(special(*bos_));
    single.push_back(sequence("A", 0));
    if (add_eos_) single.push_back(special(*eos_));
    pair = single;
    if (add_bos_) pair.push_back(special(*bos_));
    pair.push_back(sequence("B", 1));
    if (add_eos_) pair.push_back(special(*eos_));
    return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
  }

  std::string added_tokens_json() const {
    std::string out;
    for (size_t id = 0; id < types_.size() && id < tokens_.size(); ++id) {
      const bool control = types_[id] == kControl, user = types_[id] == kUserDefined;
      // A control token outside the byte alphabet is a mislabel transformers skips too: as an added
      // token its raw text would not be a vocab entry and HF would give it a new id.
      if (!(control || user) || respelled_[id]) continue;
      out += (out.empty() ? "\n    " : ",\n    ");
      out += "{\"id\": " + std::to_string(id) + ", \"content\": " + quoted(tokens_[id]) +
             ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": " +
             (control ? "true" : "false") + "}";
    }
    return out.empty() ? "[]" : "[" + out + "\n  ]";
  }

  std::string tokenizer_json() const {
    const Plain decoder = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
    std::string out = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
    out += "  \"added_tokens\": " + added_tokens_json() + ",\n";
    out += "  \"normalizer\": null,\n";
    out += "  \"pre_tokenizer\": " + gguf_pre_tokenizer_json(pre_->split).dump() + ",\n";
    out += "  \"post_processor\": " + post_processor_json().dump() + ",\n";
    out += "  \"decoder\": " + decoder.dump() + ",\n";
    out += "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
           "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
           "    \"byte_fallback\": false,\n    \"ignore_merges\": " +
           std::string(pre_->ignore_merges ? "true" : "false") + ",\n    \"vocab\": {";
    for (size_t id = 0; id < spelled_.size(); ++id)
      out += (id ? ",\n      " : "\n      ") + quoted(spelled_[id]) + ": " + std::to_string(id);
    out += "\n    },\n    \"merges\": [";
    for (size_t k = 0; k < merges_.size(); ++k)
      out += (k ? ",\n      [" : "\n      [") + quoted(merges_[k].first) + ", " + quoted(merges_[k].second) + "]";
    out += merges_.empty() ? "]\n  }\n}\n" : "\n    ]\n  }\n}\n";
    return out;
  }

  std::string tokenizer_config_json() const {
    Plain c = Plain::object();
    c["tokenizer_class"] = "PreTrainedTokenizerFast";
    auto token = [&](const std::optional<int64_t>& id) { return id ? Plain(tokens_[size_t(*id)]) : Plain(nullptr); };
    c["bos_token"] = token(bos_);
    c["eos_token"] = token(eos_);
    c["unk_token"] = token(unk_);
    c["pad_token"] = token(pad_);
    c["add_bos_token"] = add_bos_;
    c["add_eos_token"] = add_eos_;
    c["clean_up_tokenization_spaces"] = false;
    if (auto context = f_.get_string("general.architecture")) {
      if (auto n = f_.get_uint(*context + ".context_length")) c["model_max_length"] = *n;
    }
    if (auto tmpl = f_.get_string("tokenizer.chat_template")) {
      if (find_invalid_utf8(*tmpl)) fail("key 'tokenizer.chat_template' is not valid UTF-8");
      c["chat_template"] = *tmpl;
    }
    return c.dump(2) + "\n";
  }

  const GgufFile& f_;
  const GgufPreTokenizer* pre_ = nullptr;
  std::vector<std::string> tokens_, spelled_;
  std::vector<bool> respelled_;
  std::vector<int64_t> types_;
  std::unordered_map<std::string, int32_t> ids_;
  std::vector<std::pair<std::string, std::string>> merges_;
  std::optional<int64_t> bos_, eos_, unk_, pad_;
  bool add_bos_ = false, add_eos_ = false;
};

}  // namespace

bool gguf_has_tokenizer(const GgufFile& file) { return file.find("tokenizer.ggml.model") != nullptr; }

GgufTokenizerFiles gguf_tokenizer_files(const GgufFile& file) { return Builder(file).build(); }

}  // namespace upcycle::data
