// `upcycle analyze CKPT --data DATASET… [--dense DENSE_CKPT] [--json] [--out FILE.json]`: routing and
// expert-specialisation diagnostics of one checkpoint (analysis/analyze.h), as a per-layer table, as
// the analysis JSON of docs/study.md (--json on stdout, --out written atomically), or both. The text
// is drawn from the same JSON, so the two never disagree. Non-goals: comparing checkpoints (report).
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>

#include "analysis/analyze.h"
#include "cli/commands.h"
#include "cli/eval_window_flags.h"
#include "cli/options.h"
#include "cli/runtime_flags.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/json.h"
#include "core/progress.h"

namespace upcycle::cli {
namespace {

struct AnalyzeCliOptions {
  std::string checkpoint;
  std::vector<std::string> data;
  std::string dense;
  std::string split = "val";
  int64_t seq_len = 128;
  int64_t max_tokens = 16384;
  int64_t batch = 8;
  std::string backend = "cpu";
  int64_t threads = 0;
  bool json = false;
  std::string out;
};

constexpr const char* kMetricsHelp =
    "what the numbers mean (per MoE layer; JSON field names in brackets):\n"
    "  load [load]            share of kept expert assignments per expert, all domains together (sums to 1);\n"
    "                         the table shows min and max times E, so 1.00 / 1.00 is perfect balance and\n"
    "                         0.00 means an expert no token uses (a dead expert wastes its parameters).\n"
    "  dropped [dropped]      fraction of assignments dropped by the capacity factor (0 when dropless).\n"
    "  entropy [entropy]      mean router entropy per token in nats; ln E = a router that cannot choose,\n"
    "                         lower = confident routing. top1 [top1] is the mean top-1 probability.\n"
    "  aux [aux]              load-balancing loss L_aux normalised so 1 = perfectly balanced.\n"
    "  exp-sim [expert_similarity_mean]  mean neuron-matched similarity between different experts: each\n"
    "                         hidden neuron is its [gate row; up row; down column]; every neuron of one\n"
    "                         expert takes its best cosine with any neuron of the other, averaged over\n"
    "                         neurons and both directions. Permuting an FFN's neurons does not change its\n"
    "                         function, and this number ignores such permutations: copies give exactly 1\n"
    "                         (also the neuron-shuffled copies of --expert-split shuffled); Drop-Upcycling\n"
    "                         at r = 0.5 starts near 0.3-0.4 here and 0.5-0.6 with the dense FFN; unrelated\n"
    "                         experts sit at a floor, the best of F random cosines in 3*D dimensions, a bit\n"
    "                         under sqrt(2 ln F / (3 D)) (0.20 at D = 64, F = 192). Experts specialise only\n"
    "                         as this falls; staying near 1 means the MoE is still the dense model E times\n"
    "                         over. Per-matrix weight scaling (--weight-scaling-mode down) lowers it. Cost\n"
    "                         O(E^2 F^2 D) per layer; above 512 neurons an evenly spaced sample of 512\n"
    "                         query neurons is averaged (each still searches all neurons of the other).\n"
    "  exp-ord [expert_similarity_ordered_mean]  the plain cosine of the weights in storage order (reads ~0\n"
    "                         for shuffled experts; only comparable between runs of the same recipe).\n"
    "  dense-sim [dense_similarity_mean] the same matched similarity of each expert with the dense FFN it\n"
    "                         came from (needs --dense; '-' without it): how far training has moved the\n"
    "                         experts from their origin. Fine-grained experts (narrower than the dense FFN)\n"
    "                         use only the expert->dense direction. dense-ord [dense_similarity_ordered_mean]\n"
    "                         is its storage-order cosine ('-' when the widths differ).\n"
    "  dom-spec [domain_specialization] mean over domains of the total-variation distance between the\n"
    "                         domain's expert load and the mean load of all domains: 0 = every domain uses\n"
    "                         the experts alike, up to 1 - 1/D when D domains use disjoint experts. Pass\n"
    "                         several datasets (one domain each) to see it; one domain gives 0.\n"
    "  Specialisation shows as exp-sim falling while dom-spec rises: experts become different and domains\n"
    "  route to different experts. Below the table: each domain's most used experts per layer.";

void bind(OptionSet& set, AnalyzeCliOptions& o) {
  set.add_positional("CKPT", "checkpoint directory to analyze (an MoE or dense HF checkpoint; a training "
                             "checkpoint also gives its step and FLOPs)", &o.checkpoint, Required::kYes);
  set.add_list("data", "DATASET", "dataset directories (upcycle data tokenize), one domain each", &o.data);
  set.add("dense", "DENSE_CKPT", "dense checkpoint to compare each expert with (the model it was upcycled from)",
          &o.dense);
  bind_eval_window_flags(set, &o.split, &o.seq_len, &o.max_tokens, &o.batch, "which split of each dataset to evaluate",
                         "predicted tokens per domain at most (the first N / seq-len windows); 0 = all");
  bind_runtime_flags(set, &o.backend, &o.threads);
  set.add_flag("json", "print the analysis JSON (docs/study.md) instead of the table", &o.json);
  set.add("out", "FILE.json", "also write the analysis JSON to FILE.json (atomically)", &o.out);
  set.add_epilog(kMetricsHelp);
  set.add_epilog(
      "examples:\n  upcycle analyze models/moe --data data/prose data/code --dense models/dense\n"
      "  upcycle analyze runs/moe/checkpoints/step-00000100 --data data/prose --json --out step-100.json");
}

std::string num(const Json& v, const char* format) {
  if (v.is_null()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v.get<double>());
  return buf;
}

std::string sim(const Json& v) { return num(v, "%.4f"); }  // a 4-decimal column, '-' for null

// "e3 0.31, e1 0.20, e0 0.15": the (at most) three most used experts of one domain.
std::string top_experts(const std::vector<double>& load) {
  std::vector<size_t> order(load.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return load[a] > load[b]; });
  std::string s;
  for (size_t i = 0; i < std::min<size_t>(3, order.size()); ++i) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%se%zu %.2f", i ? ", " : "", order[i], load[order[i]]);
    s += buf;
  }
  return s;
}

void print_text(const Json& a) {
  std::printf("%s", ("analysis of " + a["checkpoint"].get<std::string>()).c_str());
  if (!a["step"].is_null())
    std::printf(" (step %lld, %.3g FLOPs)", static_cast<long long>(a["step"].get<int64_t>()), a["flops"].get<double>());
  std::printf(", seq-len %lld\n\n%-16s %10s %10s  %s\n", static_cast<long long>(a["seq_len"].get<int64_t>()), "domain",
              "loss", "tokens", "data");
  for (const Json& d : a["domains"])
    std::printf("%-16s %10.4f %10lld  %s (%s)\n", d["domain"].get<std::string>().c_str(), d["loss"].get<double>(),
                static_cast<long long>(d["tokens"].get<int64_t>()), d["data"].get<std::string>().c_str(),
                d["split"].get<std::string>().c_str());
  if (a["layers"].empty()) {
    std::printf("\ndense checkpoint: no MoE layers, so no routing or expert statistics\n");
    return;
  }
  std::printf("\n%5s %4s %3s %12s %8s %8s %6s %8s %8s %9s %9s %8s\n", "layer", "E", "k", "load min/max", "dropped",
              "entropy", "top1", "exp-sim", "exp-ord", "dense-sim", "dense-ord", "dom-spec");
  for (const Json& l : a["layers"]) {
    const auto load = l["load"].get<std::vector<double>>();
    const double E = double(load.size());
    char minmax[32];
    std::snprintf(minmax, sizeof minmax, "%.2f / %.2f", *std::min_element(load.begin(), load.end()) * E,
                  *std::max_element(load.begin(), load.end()) * E);
    std::printf("%5lld %4lld %3lld %12s %8.4f %8.3f %6.3f %8s %8s %9s %9s %8.4f\n",
                static_cast<long long>(l["layer"].get<int64_t>()), static_cast<long long>(l["experts"].get<int64_t>()),
                static_cast<long long>(l["top_k"].get<int64_t>()), minmax, l["dropped"].get<double>(),
                l["entropy"].get<double>(), l["top1"].get<double>(), sim(l["expert_similarity_mean"]).c_str(),
                sim(l["expert_similarity_ordered_mean"]).c_str(), sim(l["dense_similarity_mean"]).c_str(),
                sim(l["dense_similarity_ordered_mean"]).c_str(), l["domain_specialization"].get<double>());
  }
  const Json& s = a["summary"];
  std::printf("%5s %4s %3s %12s %8s %8s %6s %8s %8s %9s %9s %8s\n", "mean", "", "", "", sim(s["dropped"]).c_str(),
              num(s["entropy"], "%.3f").c_str(), num(s["top1"], "%.3f").c_str(),
              sim(s["expert_similarity_mean"]).c_str(),
              sim(s["expert_similarity_ordered_mean"]).c_str(), sim(s["dense_similarity_mean"]).c_str(),
              sim(s["dense_similarity_ordered_mean"]).c_str(), sim(s["domain_specialization"]).c_str());
  std::printf("\ntop experts per domain (share of the domain's kept assignments):\n");
  for (const Json& l : a["layers"])
    for (const auto& [domain, load] : l["domain_load"].items())
      std::printf("  layer %-3lld %-16s %s\n", static_cast<long long>(l["layer"].get<int64_t>()), domain.c_str(),
                  top_experts(load.get<std::vector<double>>()).c_str());
}

}  // namespace

int run_analyze(const Args& args) {
  AnalyzeCliOptions o;
  OptionSet set("analyze",
                "upcycle analyze CKPT --data DATASET... [--dense DENSE_CKPT] [--split val|train] [--seq-len N] "
                "[--max-tokens N] [--batch N] " + runtime_flags_usage() + " [--json] [--out FILE.json]",
                "Routing and expert-specialisation diagnostics of a checkpoint on one or more datasets (one\n"
                "domain each): expert loads overall and per domain, router entropy, neuron-matched expert weight\n"
                "similarity (to each other and to the dense model; invariant to permuting an FFN's neurons) and\n"
                "domain specialisation, per MoE layer.");
  bind(set, o);
  if (!set.parse(args)) return 0;
  if (o.data.empty()) throw Error("missing --data (one or more dataset directories, one domain each)");
  apply_threads(o.threads);

  analysis::AnalyzeOptions a;
  a.checkpoint = o.checkpoint;
  a.data.assign(o.data.begin(), o.data.end());
  if (set.given("dense")) a.dense = o.dense;
  a.split = o.split, a.seq_len = o.seq_len, a.max_tokens = o.max_tokens, a.batch = o.batch, a.backend = o.backend;

  Progress progress("analyze", analysis::analysis_token_count(a), "tokens");
  const Json result = analysis::analyze_checkpoint(a, &progress);
  progress.finish();
  if (!o.out.empty()) write_text_file_atomically(o.out, "analysis", result.dump(2) + "\n");
  if (o.json)
    std::printf("%s\n", result.dump(2).c_str());
  else
    print_text(result);
  return 0;
}

}  // namespace upcycle::cli
