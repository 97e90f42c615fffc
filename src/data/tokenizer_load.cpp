// tokenizer.json (+ tokenizer_config.json) → Tokenizer::State. Every unsupported feature is an
// Error naming the feature and the file; JSON of the wrong shape is an Error naming the key.
#include <algorithm>

#include "core/error.h"
#include "core/file_util.h"
#include "core/json.h"
#include "data/tokenizer_state.h"

namespace upcycle::data {
namespace {
namespace fs = std::filesystem;

// Ids index dense tables (vocab_by_id, the id → token lookup): one id of 2^31 - 1 in a 10-entry vocab
// would allocate gigabytes. 2^24 is 64× the largest released vocabulary (Gemma's 262 144).
constexpr int32_t kMaxTokenId = (1 << 24) - 1;

// Plain (hash-ordered) JSON: core's ordered_json looks keys up linearly, far too slow for a
// 150k-entry vocab object; key order carries nothing in tokenizer.json.
using Json = nlohmann::json;

Json parse_tokenizer_json(const fs::path& file) {
  const std::string text = read_text_file(file, "tokenizer.json");
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    std::string detail = e.what();
    if (auto pos = detail.find("] "); pos != std::string::npos) detail = detail.substr(pos + 2);
    throw Error("tokenizer.json is not valid JSON: " + detail, file.string());
  }
}

// Small accessors that turn a wrong JSON shape into a one-line Error naming the key path.
struct Reader {
  std::string file;

  [[noreturn]] void fail(const std::string& what) const { throw Error(what, file); }
  const Json& at(const Json& obj, const char* key, const std::string& where) const {
    if (!obj.is_object() || !obj.contains(key)) fail("tokenizer.json: missing " + where + "." + key);
    return obj.at(key);
  }
  bool flag(const Json& obj, const char* key, bool fallback, const std::string& where) const {
    if (!obj.contains(key) || obj.at(key).is_null()) return fallback;
    if (!obj.at(key).is_boolean()) fail("tokenizer.json: " + where + "." + key + " must be true or false");
    return obj.at(key).get<bool>();
  }
  std::string type_of(const Json& obj, const std::string& where) const {
    const Json& t = at(obj, "type", where);
    if (!t.is_string()) fail("tokenizer.json: " + where + ".type must be a string");
    return t.get<std::string>();
  }
  std::string str(const Json& v, const std::string& where) const {
    if (!v.is_string()) fail("tokenizer.json: " + where + " must be a string");
    return v.get<std::string>();
  }
  int32_t id(const Json& v, const std::string& where) const {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
      fail("tokenizer.json: " + where + " must be a token id (an integer in [0, 2^31))");
    return int32_t(v.get<int64_t>());
  }
};

void load_normalizer(const Reader& r, const Json& n, std::vector<NormalForm>& out) {
  if (n.is_null()) return;
  const std::string type = r.type_of(n, "normalizer");
  if (type == "NFC") out.push_back(NormalForm::kNfc);
  else if (type == "NFD") out.push_back(NormalForm::kNfd);
  else if (type == "NFKC") out.push_back(NormalForm::kNfkc);
  else if (type == "NFKD") out.push_back(NormalForm::kNfkd);
  else if (type == "Sequence") {
    const Json& list = r.at(n, "normalizers", "normalizer");
    if (!list.is_array()) r.fail("tokenizer.json: normalizer.normalizers must be a list");
    for (const Json& item : list) load_normalizer(r, item, out);
  } else {
    r.fail("unsupported normalizer " + type + " (supported: NFC, NFD, NFKC, NFKD, Sequence)");
  }
}

void load_pre_tokenizer(const Reader& r, const Json& p, std::vector<PreTokenizeStep>& out) {
  if (p.is_null()) return;
  const std::string type = r.type_of(p, "pre_tokenizer");
  PreTokenizeStep step;
  if (type == "Sequence") {
    const Json& list = r.at(p, "pretokenizers", "pre_tokenizer");
    if (!list.is_array()) r.fail("tokenizer.json: pre_tokenizer.pretokenizers must be a list");
    for (const Json& item : list) load_pre_tokenizer(r, item, out);
    return;
  } else if (type == "Split") {
    const Json& pattern = r.at(p, "pattern", "pre_tokenizer(Split)");
    if (pattern.contains("Regex"))
      step.regex = std::make_shared<Regex>(r.str(pattern["Regex"], "Split.pattern.Regex"), Regex::Literal::kNo, r.file);
    else if (pattern.contains("String"))
      step.regex = std::make_shared<Regex>(r.str(pattern["String"], "Split.pattern.String"), Regex::Literal::kYes, r.file);
    else
      r.fail("tokenizer.json: Split.pattern must hold \"Regex\" or \"String\"");
    const std::string behavior = r.str(r.at(p, "behavior", "pre_tokenizer(Split)"), "Split.behavior");
    if (behavior == "Isolated") step.behavior = SplitBehavior::kIsolated;
    else if (behavior == "Removed") step.behavior = SplitBehavior::kRemoved;
    else r.fail("unsupported Split behavior " + behavior + " (supported: Isolated, Removed)");
    if (r.flag(p, "invert", false, "Split")) r.fail("unsupported Split with invert true");
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizeStep::Kind::kByteLevel;
    step.add_prefix_space = r.flag(p, "add_prefix_space", true, "ByteLevel");
    if (r.flag(p, "use_regex", true, "ByteLevel"))
      step.regex = std::make_shared<Regex>(kGpt2Pattern, Regex::Literal::kNo, r.file);
  } else if (type == "Digits") {
    step.kind = PreTokenizeStep::Kind::kDigits;
    step.individual_digits = r.flag(p, "individual_digits", false, "Digits");
  } else {
    r.fail("unsupported pre_tokenizer " + type + " (supported: ByteLevel, Split, Digits, Sequence)");
  }
  out.push_back(std::move(step));
}

void load_post_processor(const Reader& r, const Json& p, Tokenizer::State& s) {
  if (p.is_null()) return;
  const std::string type = r.type_of(p, "post_processor");
  if (type == "ByteLevel") return;  // only trims offsets, which upcycle does not expose
  if (type == "Sequence") {
    const Json& list = r.at(p, "processors", "post_processor");
    if (!list.is_array()) r.fail("tokenizer.json: post_processor.processors must be a list");
    for (const Json& item : list) load_post_processor(r, item, s);
    return;
  }
  if (type != "TemplateProcessing")
    r.fail("unsupported post_processor " + type + " (supported: TemplateProcessing, ByteLevel, Sequence)");
  const Json& single = r.at(p, "single", "post_processor");
  const Json& specials = r.at(p, "special_tokens", "post_processor");
  if (!single.is_array()) r.fail("tokenizer.json: post_processor.single must be a list");
  bool seen_a = false;
  for (const Json& item : single) {
    if (item.contains("Sequence")) {
      if (r.str(r.at(item["Sequence"], "id", "single.Sequence"), "single.Sequence.id") != "A" || seen_a)
        r.fail("unsupported TemplateProcessing single template: it must hold $A exactly once");
      seen_a = true;
    } else if (item.contains("SpecialToken")) {
      const std::string name = r.str(r.at(item["SpecialToken"], "id", "single.SpecialToken"), "SpecialToken.id");
      if (!specials.contains(name)) r.fail("tokenizer.json: TemplateProcessing special token " + name + " is not in special_tokens");
      const Json& ids = r.at(specials[name], "ids", "special_tokens." + name);
      for (const Json& v : ids) (seen_a ? s.template_suffix : s.template_prefix).push_back(r.id(v, "special_tokens." + name + ".ids"));
    } else {
      r.fail("tokenizer.json: TemplateProcessing single items must be Sequence or SpecialToken");
    }
  }
  if (!seen_a) r.fail("unsupported TemplateProcessing single template: it must hold $A exactly once");
}

void load_decoder(const Reader& r, const Json& d, Tokenizer::State& s) {
  if (d.is_null()) return;
  const std::string type = r.type_of(d, "decoder");
  if (type == "ByteLevel") s.decoder = DecoderKind::kByteLevel;
  else r.fail("unsupported decoder " + type + " (supported: ByteLevel)");
}

std::vector<std::string> merge_sides(const Reader& r, const Json& m, size_t rank) {
  const std::string where = "model.merges[" + std::to_string(rank) + "]";
  if (m.is_array() && m.size() == 2) return {r.str(m[0], where + "[0]"), r.str(m[1], where + "[1]")};
  const std::string line = r.str(m, where);
  const size_t space = line.find(' ');
  if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
    r.fail("tokenizer.json: " + where + " '" + line + "' must be two tokens separated by one space");
  return {line.substr(0, space), line.substr(space + 1)};
}

void load_model(const Reader& r, const Json& m, Tokenizer::State& s) {
  if (!m.is_object()) r.fail("tokenizer.json: missing model");
  const std::string type = m.contains("type") ? r.type_of(m, "model") : "BPE";
  if (type != "BPE") r.fail("unsupported model type " + type + " (only BPE is supported)");
  if (m.contains("dropout") && !m["dropout"].is_null()) r.fail("unsupported BPE dropout (must be null)");
  if (m.contains("unk_token") && !m["unk_token"].is_null()) r.fail("unsupported BPE unk_token (must be null for byte-level BPE)");
  if (r.flag(m, "byte_fallback", false, "model")) r.fail("unsupported BPE byte_fallback true (only byte-level BPE is supported)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(key) && !m[key].is_null() && !r.str(m[key], std::string("model.") + key).empty())
      r.fail(std::string("unsupported BPE ") + key + " '" + m[key].get<std::string>() + "' (must be null)");
  const Json& vocab_json = r.at(m, "vocab", "model");
  if (!vocab_json.is_object()) r.fail("tokenizer.json: model.vocab must be an object of token → id");
  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(vocab_json.size());
  for (auto it = vocab_json.begin(); it != vocab_json.end(); ++it) {
    const int32_t id = r.id(it.value(), "model.vocab[\"" + it.key() + "\"]");
    if (id > kMaxTokenId)
      r.fail("tokenizer.json: model.vocab[\"" + it.key() + "\"] is id " + std::to_string(id) +
             ", above upcycle's limit of " + std::to_string(kMaxTokenId));
    vocab[it.key()] = id;
    s.vocab_size = std::max<int64_t>(s.vocab_size, int64_t(id) + 1);
  }
  s.vocab_by_id.assign(size_t(s.vocab_size), {});
  s.has_vocab_id.assign(size_t(s.vocab_size), 0);
  for (const auto& [tok, id] : vocab) s.vocab_by_id[size_t(id)] = tok, s.has_vocab_id[size_t(id)] = 1;

  const Json& merges_json = r.at(m, "merges", "model");
  if (!merges_json.is_array()) r.fail("tokenizer.json: model.merges must be a list");
  std::vector<BpeMerge> merges;
  std::vector<int32_t> merged_ids;
  merges.reserve(merges_json.size());
  merged_ids.reserve(merges_json.size());
  for (size_t k = 0; k < merges_json.size(); ++k) {
    const auto sides = merge_sides(r, merges_json[k], k);
    const auto find = [&](const std::string& tok) {
      auto it = vocab.find(tok);
      if (it == vocab.end())
        r.fail("tokenizer.json: model.merges[" + std::to_string(k) + "] uses '" + tok + "', which is not in the vocab");
      return it->second;
    };
    merges.push_back({find(sides[0]), find(sides[1])});
    merged_ids.push_back(find(sides[0] + sides[1]));
  }
  s.bpe = BytePairModel(std::move(vocab), merges, std::move(merged_ids), r.flag(m, "ignore_merges", false, "model"));
}

// HF ignores the ids written in added_tokens and assigns them as AddedVocabulary::add_tokens does:
// a content found in the model vocab takes that id, any other the next id after both the model
// vocab and the added tokens so far. For every real file the two agree.
void load_added_tokens(const Reader& r, const Json& list, Tokenizer::State& s) {
  if (list.is_null()) return;
  if (!list.is_array()) r.fail("tokenizer.json: added_tokens must be a list");
  const int64_t model_size = int64_t(s.bpe.vocab().size());
  int64_t max_id = -1;
  for (size_t k = 0; k < list.size(); ++k) {
    const Json& t = list[k];
    const std::string where = "added_tokens[" + std::to_string(k) + "]";
    AddedToken a;
    r.id(r.at(t, "id", where), where + ".id");  // checked for shape; see above for why it is unused
    a.content = r.str(r.at(t, "content", where), where + ".content");
    a.special = r.flag(t, "special", false, where);
    a.lstrip = r.flag(t, "lstrip", false, where);
    a.rstrip = r.flag(t, "rstrip", false, where);
    a.single_word = r.flag(t, "single_word", false, where);
    a.normalized = r.flag(t, "normalized", true, where);  // serde default of AddedToken
    if (a.content.empty() || s.added_by_content.count(a.content)) continue;  // HF skips these too
    if (auto it = s.bpe.vocab().find(a.content); it != s.bpe.vocab().end()) a.id = it->second;
    else if (max_id < 0) a.id = int32_t(model_size);
    else a.id = int32_t(max_id >= model_size || model_size == 0 ? max_id + 1 : model_size);
    max_id = std::max<int64_t>(max_id, a.id);
    s.added_by_content[a.content] = s.added.size();
    s.added_by_id[a.id] = s.added.size();
    s.vocab_size = std::max<int64_t>(s.vocab_size, int64_t(a.id) + 1);
    s.added.push_back(std::move(a));
  }
}

void build_matchers(Tokenizer::State& s) {
  for (size_t k = 0; k < s.added.size(); ++k) {
    const AddedToken& a = s.added[k];
    std::string text = a.content;
    // Normalized tokens are matched against normalized text, so their content is normalized too.
    if (a.normalized)
      for (NormalForm f : s.normalizers) text = normalize(text, f);
    if (text.empty()) continue;
    AddedTokenMatcher& m = a.normalized ? s.normalized_matcher : s.raw_matcher;
    m.by_first_byte[static_cast<unsigned char>(text[0])].push_back({text, k});
    m.empty = false;
  }
  for (AddedTokenMatcher* m : {&s.raw_matcher, &s.normalized_matcher})
    for (auto& bucket : m->by_first_byte)
      std::stable_sort(bucket.begin(), bucket.end(), [](const auto& a, const auto& b) { return a.text.size() > b.text.size(); });
}

// tokenizer_config.json's bos_token / eos_token: a string, an AddedToken object or null.
std::optional<int32_t> config_token(const upcycle::Json& cfg, const char* key, const Tokenizer& tok, const std::string& file) {
  if (!cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
  const upcycle::Json& v = cfg[key];
  std::string content;
  if (v.is_string()) content = v.get<std::string>();
  else if (v.is_object() && v.contains("content") && v["content"].is_string()) content = v["content"].get<std::string>();
  else throw Error(std::string(key) + " must be a string, an object with \"content\", or null", file);
  auto id = tok.token_to_id(content);
  if (!id) throw Error(std::string(key) + " '" + content + "' is not a token of tokenizer.json", file);
  return id;
}

}  // namespace

Tokenizer Tokenizer::load(const fs::path& path) {
  fs::path file = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    file = path / "tokenizer.json";
    if (!fs::exists(file, ec)) throw Error("no tokenizer.json in the model directory", path.string());
  }
  auto state = std::make_shared<State>();
  state->file = file;
  const Json json = parse_tokenizer_json(file);
  const Reader r{file.string()};
  try {
    if (!json.is_object()) r.fail("tokenizer.json must be a JSON object");
    load_model(r, json.contains("model") ? json["model"] : Json(), *state);
    load_normalizer(r, json.value("normalizer", Json()), state->normalizers);
    std::vector<PreTokenizeStep> steps;
    load_pre_tokenizer(r, json.value("pre_tokenizer", Json()), steps);
    state->pre_tokenizer = PreTokenizer(std::move(steps));
    if (!state->pre_tokenizer.byte_level())
      r.fail("unsupported tokenizer: only byte-level BPE is supported (pre_tokenizer has no ByteLevel step)");
    load_post_processor(r, json.value("post_processor", Json()), *state);
    load_decoder(r, json.value("decoder", Json()), *state);
    load_added_tokens(r, json.value("added_tokens", Json()), *state);
    build_matchers(*state);
  } catch (const nlohmann::json::exception& e) {
    r.fail(std::string("tokenizer.json has an unexpected shape: ") + e.what());
  }
  Tokenizer tok(state);
  const fs::path config_file = file.parent_path() / "tokenizer_config.json";
  if (fs::exists(config_file, ec)) {
    const upcycle::Json cfg = read_json_file(config_file, "tokenizer_config.json");
    if (!cfg.is_object()) throw Error("tokenizer_config.json must be a JSON object", config_file.string());
    state->bos = config_token(cfg, "bos_token", tok, config_file.string());
    state->eos = config_token(cfg, "eos_token", tok, config_file.string());
  }
  return tok;
}

}  // namespace upcycle::data
