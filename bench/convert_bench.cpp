// `upcycle convert` throughput and memory: converts a dense checkpoint made by `upcycle init` into
// E experts top-K with the copy recipe (kernel-side copies of unchanged tensors and experts) and with
// Drop-Upcycling r = 0.5 (every expert matrix computed in fp32), next to `cp -r` + sync of the very
// output bytes measured in the same run; peak RSS per case (VmHWM reset through clear_refs).
// Usage: bench_convert DENSE_DIR [EXPERTS [TOP_K]]   (scripts/bench build convert)
// Everything is fsynced (convert commits through StagedDir), hence the cp + sync baseline.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

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

struct Case {
  double seconds = 0;
  uint64_t peak_rss = 0;
};

Case measure(const std::function<void()>& body) {
  run_shell("sync");
  bench::reset_peak_rss();
  auto start = std::chrono::steady_clock::now();
  body();
  Case c;
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  c.peak_rss = bench::peak_rss_bytes();
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_convert DENSE_DIR [EXPERTS [TOP_K]]\n");
    return 2;
  }
  const fs::path dense = argv[1];
  const int64_t experts = argc > 2 ? std::atoll(argv[2]) : 8, top_k = argc > 3 ? std::atoll(argv[3]) : 2;
  const fs::path out = dense.parent_path() / (dense.filename().string() + ".convert-out");
  const fs::path copy = dense.parent_path() / (dense.filename().string() + ".cp-out");
  fs::remove_all(out);
  fs::remove_all(copy);

  recipes::ConvertSpec spec;
  spec.sources = {dense};
  spec.experts = experts, spec.top_k = top_k;
  auto convert = [&](recipes::ExpertInit init) {
    spec.expert_init = init;
    recipes::convert(spec, {out, Overwrite::kReplace, 5'000'000'000ull, recipes::ShowProgress::kNo});
  };
  Case copy_case = measure([&] { convert(recipes::ExpertInit::kCopy); });
  const uint64_t bytes = dir_bytes(out);
  Case cp_case = measure([&] { run_shell("cp -r '" + out.string() + "' '" + copy.string() + "' && sync '" + copy.string() + "'/*"); });
  fs::remove_all(copy);
  Case drop_case = measure([&] { convert(recipes::ExpertInit::kDrop); });
  fs::remove_all(out);

  std::printf("%s -> %lld experts top-%lld: %s written per case\n", dense.c_str(), (long long)experts,
              (long long)top_k, format_bytes(bytes).c_str());
  std::printf("%-24s %10s %10s %12s %14s\n", "case", "seconds", "GB/s", "x cp+sync", "peak RSS");
  for (auto [name, c] : {std::pair{"cp -r + sync", cp_case}, std::pair{"convert copy", copy_case},
                         std::pair{"convert drop r=0.5", drop_case}})
    std::printf("%-24s %10.2f %10.2f %12.2f %14s\n", name, c.seconds, double(bytes) / c.seconds / 1e9,
                cp_case.seconds / c.seconds, format_bytes(c.peak_rss).c_str());
  return 0;
}
