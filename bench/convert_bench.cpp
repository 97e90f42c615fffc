// `upcycle convert` throughput and memory for every recipe family, each next to its own `cp -r` + sync
// of the copy recipe's output, measured right before the case: copy (kernel-side copies of unchanged tensors and experts),
// Drop-Upcycling r = 0.5, noise (RNU), random experts, fine-grained shuffled splits, cube-root scaling,
// and the copy recipe converting bf16 → f16. Fine-grained cases use 2·EXPERTS experts of half width
// (G = 2, top-2·K), so every case writes the same bytes as the copy recipe. Each case's output is
// removed before the next (the 1B shape writes ~14 GB per case). Peak RSS per case: VmHWM, reset
// through clear_refs. Usage: bench_convert DENSE_DIR [EXPERTS [TOP_K [CASE...]]]
// (scripts/bench build convert; CASE names as printed, default all). Drop, noise and random draw normal
// stream v2, the convert default (--rng-version; docs/recipes.md "Random streams").
// Everything is fsynced (convert commits through StagedDir), hence the cp + sync baseline. One cp per
// case because this disk's speed drifts by a third within a run (mount with discard, writeback of the
// previous case's deletes): a single cp at the start let the copy recipe itself read 0.44-0.98x.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/units.h"
#include "peak_rss.h"
#include "recipes/converter.h"

namespace fs = std::filesystem;
using namespace upcycle;

namespace {

uint64_t dir_bytes(const fs::path& dir) {
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

void run_shell(const std::string& command) {
  if (std::system(command.c_str()) != 0) throw std::runtime_error("command failed: " + command);
}

struct Measured {
  double seconds = 0;
  uint64_t peak_rss = 0;
  uint64_t bytes = 0;
};

Measured measure(const std::function<void()>& body) {
  run_shell("sync");
  bench::reset_peak_rss();
  auto start = std::chrono::steady_clock::now();
  body();
  Measured m;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.peak_rss = bench::peak_rss_bytes();
  return m;
}

struct Case {
  const char* name;
  std::function<void(recipes::ConvertSpec&)> tweak;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_convert DENSE_DIR [EXPERTS [TOP_K [CASE...]]]\n");
    return 2;
  }
  const fs::path dense = argv[1];
  const int64_t experts = argc > 2 ? std::atoll(argv[2]) : 8, top_k = argc > 3 ? std::atoll(argv[3]) : 2;
  std::set<std::string> wanted(argv + std::min(argc, 4), argv + argc);
  const fs::path out = dense.parent_path() / (dense.filename().string() + ".convert-out");
  const fs::path copy = dense.parent_path() / (dense.filename().string() + ".cp-out");
  const fs::path cp_source = dense.parent_path() / (dense.filename().string() + ".cp-source");  // the copy recipe's output
  fs::remove_all(out);
  fs::remove_all(copy);
  fs::remove_all(cp_source);

  using recipes::ConvertSpec, recipes::ExpertInit;
  auto fine = [&](ConvertSpec& s) { s.granularity = 2, s.experts = 2 * experts, s.top_k = 2 * top_k; };
  const std::vector<Case> cases = {
      {"copy", [](ConvertSpec&) {}},
      {"drop r=0.5", [](ConvertSpec& s) { s.expert_init = ExpertInit::kDrop; }},
      {"noise r=0.5", [](ConvertSpec& s) { s.expert_init = ExpertInit::kNoise; }},
      {"random", [](ConvertSpec& s) { s.expert_init = ExpertInit::kRandom; }},
      {"shuffled G=2", [&](ConvertSpec& s) { fine(s), s.split = recipes::ExpertSplit::kShuffled; }},
      {"cube-root G=2", [&](ConvertSpec& s) { fine(s), s.scaling_mode = recipes::ScalingMode::kCubeRoot; }},
      {"copy bf16->f16", [](ConvertSpec& s) { s.dtype = DType::kF16; }},
  };
  struct Row {
    std::string name;
    Measured convert, cp;  // cp: `cp -r` + sync of the copy recipe's output, just before this case
  };
  std::vector<Row> rows;
  const auto cp_and_sync = [&] {
    Measured cp = measure([&] { run_shell("cp -r '" + cp_source.string() + "' '" + copy.string() + "' && sync '" + copy.string() + "'/*"); });
    cp.bytes = dir_bytes(copy);
    fs::remove_all(copy);
    return cp;
  };
  for (const Case& c : cases) {
    if (!wanted.empty() && !wanted.count(c.name) && std::string(c.name) != "copy") continue;  // copy: cp's input
    ConvertSpec spec;
    spec.sources = {dense};
    spec.experts = experts, spec.top_k = top_k;
    c.tweak(spec);
    const bool first = std::string(c.name) == "copy";
    const Measured cp = first ? Measured{} : cp_and_sync();
    Measured m = measure([&] { recipes::convert(spec, {out, Overwrite::kRefuse, 5'000'000'000ull, recipes::ShowProgress::kNo}); });
    m.bytes = dir_bytes(out);
    if (first) {
      fs::rename(out, cp_source);
      rows.push_back({"copy", m, cp_and_sync()});  // the copy recipe's own baseline comes right after it
    } else {
      fs::remove_all(out);
      rows.push_back({c.name, m, cp});
    }
    std::fprintf(stderr, "%s done: %.1f s (cp + sync %.1f s)\n", c.name, m.seconds, rows.back().cp.seconds);
  }
  fs::remove_all(cp_source);

  std::printf("%s -> %lld experts top-%lld (fine-grained: %lld of half width, top-%lld)\n", dense.c_str(),
              (long long)experts, (long long)top_k, (long long)(2 * experts), (long long)(2 * top_k));
  std::printf("%-28s %12s %10s %10s %12s %12s %14s\n", "case", "written", "seconds", "GB/s", "cp+sync s", "x cp+sync",
              "peak RSS");
  for (const Row& r : rows)
    std::printf("%-28s %12s %10.2f %10.2f %12.2f %12.2f %14s\n", ("convert " + r.name).c_str(),
                format_bytes(r.convert.bytes).c_str(), r.convert.seconds, double(r.convert.bytes) / r.convert.seconds / 1e9,
                r.cp.seconds, (double(r.convert.bytes) / r.convert.seconds) / (double(r.cp.bytes) / r.cp.seconds),
                format_bytes(r.convert.peak_rss).c_str());
  return 0;
}
