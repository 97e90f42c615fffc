// Checkpoint I/O benchmark: reading + rewriting whole checkpoints made by `upcycle init`, next to
// `cp` of the same files measured in the same run, with peak RSS per case (the process high-water
// mark is reset before each case through /proc/self/clear_refs). Usage:
//   bench_checkpoint_io DIR [DIR…]   (scripts/bench builds a 1B-shaped and a small checkpoint)
// Cases per DIR: cp; cp + sync (same durability as upcycle, which fsyncs); rewrite (open + copy
// every tensor through CheckpointWriter, atomic, fsynced); rewrite converting bf16→f16 (the
// userspace conversion path); open (headers only, as `inspect` does).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "peak_rss.h"
#include "core/units.h"
#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/output_dir.h"

namespace fs = std::filesystem;
using namespace upcycle;

namespace {

using upcycle::bench::peak_rss_bytes;
using upcycle::bench::reset_peak_rss;

uint64_t dir_bytes(const fs::path& dir) {
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

fs::path scratch_output(const fs::path& src) { return src.parent_path() / (src.filename().string() + ".bench-out"); }

void run_shell(const std::string& command) {
  if (std::system(command.c_str()) != 0) throw std::runtime_error("command failed: " + command);
}

// Copies every tensor of src into a fresh checkpoint; float tensors become `convert_to` when given.
void rewrite(const fs::path& src, std::optional<DType> convert_to) {
  Checkpoint ckpt = Checkpoint::open(src);
  std::vector<TensorDecl> decls;
  for (const auto& shard : ckpt.shards())
    for (const auto& t : shard.tensors())
      decls.push_back({t.name, convert_to && dtype_is_float(t.dtype) ? *convert_to : t.dtype, t.shape});
  uint64_t max_shard = 0;
  for (const auto& shard : ckpt.shards()) max_shard = std::max(max_shard, shard.file_size());
  StagedDir out(scratch_output(src), Overwrite::kReplace);
  CheckpointWriter writer(out.path(), decls, {max_shard, {}});
  for (const auto& shard : ckpt.shards())
    for (const auto& t : shard.tensors()) writer.copy_from(t.name, shard, t);
  writer.finish();
  fs::copy_file(src / "config.json", out.path() / "config.json");
  out.commit();
}

struct CaseResult {
  double seconds = 0;
  uint64_t bytes = 0;
  uint64_t peak_rss = 0;
};
std::map<std::string, CaseResult> g_results;

void register_cases(const fs::path& src) {
  const uint64_t bytes = dir_bytes(src);
  const std::string tag = src.filename().string();
  auto add = [&](const std::string& name, std::function<void()> body, uint64_t counted_bytes) {
    std::string full = tag + "/" + name;
    benchmark::RegisterBenchmark(full.c_str(), [=](benchmark::State& state) {
      reset_peak_rss();
      for (auto _ : state) {
        body();
        state.PauseTiming();
        fs::remove_all(scratch_output(src));
        run_shell("sync");
        state.ResumeTiming();
      }
      state.SetBytesProcessed(static_cast<int64_t>(counted_bytes * state.iterations()));
      auto& r = g_results[full];
      r.bytes = counted_bytes;
      r.peak_rss = peak_rss_bytes();
      state.counters["peak_rss_MB"] = static_cast<double>(r.peak_rss) / 1e6;
    })->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);
  };
  const std::string q_src = "'" + src.string() + "'", q_dst = "'" + scratch_output(src).string() + "'";
  add("cp", [=] { run_shell("cp -r " + q_src + " " + q_dst); }, bytes);
  add("cp+sync", [=] { run_shell("cp -r " + q_src + " " + q_dst + " && sync " + q_dst + "/*"); }, bytes);
  add("rewrite", [=] { rewrite(src, std::nullopt); }, bytes);
  add("rewrite_bf16_to_f16", [=] { rewrite(src, DType::kF16); }, bytes);
  add("open_headers", [=] { benchmark::DoNotOptimize(Checkpoint::open(src).tensors().size()); }, 0);
}

class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      auto name = run.benchmark_name();
      if (auto slash = name.find("/iterations"); slash != std::string::npos) name = name.substr(0, slash);
      if (auto slash = name.find("/real_time"); slash != std::string::npos) name = name.substr(0, slash);
      g_results[name].seconds = run.GetAdjustedRealTime() / 1e3;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_checkpoint_io DIR [DIR…]  (checkpoints made by upcycle init)\n");
    return 2;
  }
  std::vector<fs::path> dirs(argv + 1, argv + argc);
  for (const auto& d : dirs) register_cases(d);
  RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  std::printf("\n%-40s %10s %10s %12s %14s\n", "case", "GB/s", "x cp", "x cp+sync", "peak RSS");
  for (const auto& d : dirs) {
    const std::string tag = d.filename().string();
    double cp = g_results[tag + "/cp"].seconds, cp_sync = g_results[tag + "/cp+sync"].seconds;
    for (const char* c : {"cp", "cp+sync", "rewrite", "rewrite_bf16_to_f16", "open_headers"}) {
      const auto& r = g_results[tag + "/" + c];
      double gbps = r.bytes ? static_cast<double>(r.bytes) / r.seconds / 1e9 : 0;
      std::printf("%-40s %10.2f %10.2f %12.2f %14s\n", (tag + "/" + c).c_str(), gbps, r.bytes ? cp / r.seconds : 0,
                  r.bytes ? cp_sync / r.seconds : 0, format_bytes(r.peak_rss).c_str());
    }
    std::printf("%-40s %s in %s\n", (tag + " checkpoint").c_str(), format_bytes(dir_bytes(d)).c_str(), d.c_str());
  }
  benchmark::Shutdown();
  return 0;
}
