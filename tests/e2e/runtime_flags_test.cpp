// --backend and --threads are declared once (cli/runtime_flags.h): every command that computes
// offers --threads, every command that runs the model offers --backend with exactly the registered
// backends, a negative thread count is the same one-line error everywhere, and the thread count
// changes no more than the last bits of a loss.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "support/test_support.h"

namespace upcycle {
namespace {

std::string registered_choices() {
  std::string out;
  for (const std::string& name : backend::backend_names()) out += (out.empty() ? "" : "|") + name;
  return out;
}

TEST(RuntimeFlags, EveryComputingCommandDeclaresThem) {
  const std::vector<std::string> model_runners = {"logits", "eval", "generate", "analyze", "train"};
  const std::vector<std::string> threads_only = {"convert", "study", "init"};
  for (const auto& command : model_runners) {
    auto r = test::run_upcycle({command, "--help"});
    ASSERT_EQ(r.exit_code, 0) << command << r.err;
    EXPECT_NE(r.out.find("--backend " + registered_choices() + "\n"), std::string::npos) << command << r.out;
    if (command != "train") {  // train's usage line says [options]
      EXPECT_NE(r.out.find("[--backend " + registered_choices() + "]"), std::string::npos)
          << command << ": the usage line names the registered backends\n" << r.out;
    }
    for (const backend::BackendInfo& info : backend::registered_backends())
      EXPECT_NE(r.out.find(std::string(info.name) + ": " + std::string(info.summary)), std::string::npos) << command;
  }
  for (const auto& command : model_runners) {
    auto r = test::run_upcycle({command, "--help"});
    EXPECT_NE(r.out.find("  --threads N\n      worker threads (0: all cores)"), std::string::npos) << command;
  }
  for (const auto& command : threads_only) {
    auto r = test::run_upcycle({command, "--help"});
    ASSERT_EQ(r.exit_code, 0) << command << r.err;
    EXPECT_NE(r.out.find("  --threads N\n      worker threads (0: all cores)"), std::string::npos) << command;
  }
}

TEST(RuntimeFlags, NegativeThreadsIsOneLineUserError) {
  test::ScratchDir dir;
  auto made = test::run_upcycle({"init", "--arch", "llama", "--preset", "tiny", "--seed", "1", (dir / "m").string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string m = (dir / "m").string();
  const std::vector<std::vector<std::string>> calls = {
      {"logits", m, "--tokens", "1 2", "--out", (dir / "l.npy").string()},
      {"generate", m, "--tokens", "1 2", "--max-new-tokens", "1"},
      {"init", "--arch", "llama", "--preset", "tiny", (dir / "other").string()},
  };
  for (auto args : calls) {
    args.insert(args.end(), {"--threads", "-3"});
    auto r = test::run_upcycle(args);
    EXPECT_EQ(r.exit_code, 2) << args[0];
    EXPECT_EQ(r.err, "upcycle: error: --threads must be 0 (all cores) or positive, got -3\n") << args[0];
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "l.npy"));
  EXPECT_FALSE(std::filesystem::exists(dir / "other"));
}

TEST(RuntimeFlags, EvalThreadCountChangesOnlyLastBits) {
  test::ScratchDir dir;
  auto made = test::run_upcycle({"init", "--arch", "qwen2", "--preset", "tiny", "--dtype", "f32", "--seed", "4",
                                 (dir / "m").string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  std::string raw;
  for (uint32_t i = 0; i < 2 * 65; ++i) {
    const uint32_t id = (i * 2654435761u) % 500u;
    raw.append(reinterpret_cast<const char*>(&id), sizeof id);
  }
  test::write_bytes(dir / "ids.bin", raw);
  std::vector<double> losses;
  for (const char* threads : {"1", "2"}) {
    auto r = test::run_upcycle({"eval", (dir / "m").string(), "--data", (dir / "ids.bin").string(), "--seq-len", "64",
                                "--threads", threads, "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const size_t at = r.out.find("\"loss\": ");
    ASSERT_NE(at, std::string::npos) << r.out;
    losses.push_back(std::strtod(r.out.c_str() + at + 8, nullptr));
  }
  EXPECT_GT(losses[0], 5.0);  // a random tiny model: about ln(vocab)
  EXPECT_NEAR(losses[0], losses[1], 1e-6 * losses[0]);
}

}  // namespace
}  // namespace upcycle
