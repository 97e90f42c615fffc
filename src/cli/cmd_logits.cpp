// `upcycle logits CKPT --tokens "1 2 3" --out FILE.npy [--backend NAME] [--threads N]`: run one forward pass
// of a checkpoint over one sequence and save the float32 logits [T, V] as .npy — the hook for
// comparing the engine with transformers token for token. Input is validated before any weight is
// read (token ids in [0, vocab_size)); the output file appears atomically or not at all.
#include <cstdio>

#include "backend/backend.h"
#include "backend/host_view.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "cli/runtime_flags.h"
#include "cli/token_args.h"
#include "core/error.h"
#include "io/model_config.h"
#include "io/npy_file.h"
#include "model/load_model.h"

namespace upcycle::cli {
namespace {

struct LogitsOptions {
  std::string checkpoint;
  std::string tokens;
  std::string out;
  std::string backend = "cpu";
  int64_t threads = 0;
};

}  // namespace

int run_logits(const Args& args) {
  LogitsOptions o;
  OptionSet set("logits", "upcycle logits CKPT --tokens \"ID ID ...\" --out FILE.npy " + runtime_flags_usage(),
                "Run one forward pass of the checkpoint over one token sequence and write the float32 logits,\n"
                "shape [T, V], as a NumPy .npy file (np.load reads it). The file is written atomically.");
  set.add_positional("CKPT", "checkpoint directory (config.json + safetensors)", &o.checkpoint, Required::kYes);
  set.add("tokens", "IDS", "token ids separated by spaces or commas, each in [0, vocab_size)", &o.tokens);
  set.add("out", "FILE", "output .npy file", &o.out);
  bind_runtime_flags(set, &o.backend, &o.threads);
  set.add_epilog("example:\n  upcycle logits /tmp/tiny-llama --tokens \"1 15 27 3\" --out /tmp/logits.npy");
  if (!set.parse(args)) return 0;
  if (!set.given("tokens")) throw Error("missing --tokens (token ids, e.g. --tokens \"1 2 3\")");
  if (o.out.empty()) throw Error("missing --out (the .npy file to write)");

  apply_threads(o.threads);
  ModelConfig config = read_model_config(o.checkpoint);
  std::vector<int32_t> ids = parse_token_ids(o.tokens, config.vocab_size);
  auto backend = backend::make_backend(backend::backend_kind_from_name(o.backend));
  auto transformer = model::load_transformer(config, o.checkpoint, *backend);

  const int64_t T = int64_t(ids.size());
  const auto logits_TV = backend::host_view(*backend, transformer->forward(ids.data(), 1, T),
                                            size_t(T * config.vocab_size));  // the readback
  write_npy_f32(o.out, logits_TV.data(), {T, config.vocab_size});
  std::printf("wrote %s: logits [%lld, %lld] (%s backend)\n", o.out.c_str(), static_cast<long long>(T),
              static_cast<long long>(config.vocab_size), o.backend.c_str());
  return 0;
}

}  // namespace upcycle::cli
