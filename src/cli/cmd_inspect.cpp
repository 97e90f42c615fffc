// `upcycle inspect DIR [--json] [--tensors]`: describe a checkpoint and check it against its
// config.json, reading headers only. Exit status 2 when any problem is found, so scripts can use
// it as a validator; the report is printed either way.
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/checkpoint_report.h"

namespace upcycle::cli {

int run_inspect(const Args& args) {
  struct {
    std::string dir;
    bool json = false;
    bool tensors = false;
  } o;
  OptionSet set("inspect", "upcycle inspect DIR [--json] [--tensors]",
                "Describe a Hugging Face checkpoint directory: family, shapes, attention and RoPE settings, which\n"
                "layers are MoE, experts/top-k/shared experts, router semantics (renormalised or not), total and\n"
                "active parameters per token, dtypes and files — and check every tensor's name and shape against\n"
                "config.json. Only headers are read, so even a 100 GB checkpoint opens instantly.\n"
                "Exits with status 2 (after printing the report) when any problem is found.");
  set.add_positional("DIR", "checkpoint directory (config.json + model.safetensors or shards with index)", &o.dir,
                     Required::kYes);
  set.add_flag("json", "print the report as JSON", &o.json);
  set.add_flag("tensors", "also list every tensor with dtype, shape and file", &o.tensors);
  if (!set.parse(args)) return 0;

  Json report = inspect_checkpoint(o.dir, o.tensors ? TensorListing::kInclude : TensorListing::kOmit);
  std::string text = o.json ? report.dump(2) + "\n" : render_report_text(report);
  std::fputs(text.c_str(), stdout);
  const Json& problems = report["problems"];
  if (!problems.empty()) {
    std::string first = problems[0].get<std::string>();
    std::string more = problems.size() > 1 ? " (and " + std::to_string(problems.size() - 1) + " more problems)" : "";
    throw Error(first + more, o.dir);
  }
  return 0;
}

}  // namespace upcycle::cli
