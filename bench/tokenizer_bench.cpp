// Tokenizer throughput: data::Tokenizer::encode on ~2 MB of English-like text (sentences drawn
// from a fixed paragraph, with numbers, deterministic) for the Llama-3 and Qwen3 tokenizer.json of
// tests/reference, next to HF tokenizers (Rust, via tests/reference/encode.py --bench) on the same
// text in the same run. Both single-threaded, one warm-up pass each (fills the BPE caches).
// Usage: bench_tokenizer [MEGABYTES]. Needs scripts/setup (the reference Python environment).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/tokenizer.h"

namespace {
namespace fs = std::filesystem;

std::string english_text(size_t bytes) {
  const std::vector<std::string> sentences = {
      "The quick brown fox jumps over the lazy dog.",
      "Mixture-of-experts models route each token to a few of many feed-forward experts.",
      "In 2023, researchers trained models on 1.4 trillion tokens of text and code.",
      "She said it's the best result they've seen, but we'll need more evidence.",
      "Upcycling starts from a dense checkpoint and copies its MLP into every expert.",
      "Prices rose by 3.5% in March, while wages grew by only 2.1%.",
      "Why does the router collapse onto one expert when the load-balancing loss is off?",
      "def forward(self, x):\n    return self.experts(self.router(x))\n",
      "Tokenizers split text into pre-tokens with a regular expression before merging bytes.",
      "He arrived at 10:45 a.m., and the meeting lasted for 90 minutes."};
  std::string text;
  uint64_t state = 7;
  while (text.size() < bytes) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    text += sentences[(state >> 33) % sentences.size()];
    text += (state >> 20) % 5 == 0 ? "\n\n" : " ";
  }
  return text;
}

double encode_mb_per_s(const upcycle::data::Tokenizer& tok, const std::string& text, size_t& tokens) {
  tokens = tok.encode(text).size();  // warm-up
  const auto start = std::chrono::steady_clock::now();
  tokens = tok.encode(text).size();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return double(text.size()) / 1e6 / s;
}

}  // namespace

int main(int argc, char** argv) {
  const double megabytes = argc > 1 ? std::atof(argv[1]) : 2.0;
  const fs::path reference = UPCYCLE_REFERENCE_DIR, python = UPCYCLE_PYTHON, tokenizers = UPCYCLE_TOKENIZERS_DIR;
  const std::string text = english_text(size_t(megabytes * 1e6));
  const fs::path text_file = fs::temp_directory_path() / "upcycle_tokenizer_bench.txt";
  std::ofstream(text_file, std::ios::binary) << text;
  std::printf("%-8s %12s %12s %10s\n", "tokenizer", "upcycle MB/s", "HF MB/s", "ratio");
  for (const char* name : {"llama3", "qwen3"}) {
    const fs::path file = tokenizers / name / "tokenizer.json";
    try {
      const auto tok = upcycle::data::Tokenizer::load(file);
      size_t tokens = 0;
      const double ours = encode_mb_per_s(tok, text, tokens);
      const std::string cmd = "'" + python.string() + "' '" + (reference / "encode.py").string() + "' --bench '" +
                              file.string() + "' '" + text_file.string() + "'";
      double hf = 0.0;
      size_t hf_tokens = 0;
      if (FILE* p = popen(cmd.c_str(), "r")) {
        if (std::fscanf(p, "hf_mb_per_s %lf tokens %zu", &hf, &hf_tokens) != 2) hf = 0.0;
        pclose(p);
      }
      std::printf("%-8s %12.2f %12.2f %9.2fx  (%zu tokens%s)\n", name, ours, hf, hf > 0 ? ours / hf : 0.0, tokens,
                  hf_tokens == tokens ? ", same count as HF" : ", HF count differs or HF not run");
    } catch (const upcycle::Error& e) {
      std::fprintf(stderr, "bench_tokenizer: %s (run scripts/setup)\n", e.message().c_str());
      return 2;
    }
  }
  fs::remove(text_file);
  return 0;
}
