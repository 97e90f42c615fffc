// A child `upcycle` process running in the background, for tests that signal or kill it mid-run
// (train and study resume tests), and a poll for the files it writes.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.h"

namespace upcycle::test {

namespace fs = std::filesystem;

// The child's environment: the parent's plus `env` ("NAME=value"); stdout/stderr into files.
class Child {
 public:
  Child(const std::vector<std::string>& args, const std::vector<std::string>& env) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int out = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, 1);
      ::dup2(err, 2);
      for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
      std::vector<std::string> copies = args;
      std::string binary = UPCYCLE_BINARY;
      std::vector<char*> argv{binary.data()};
      for (auto& a : copies) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(binary.c_str(), argv.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0 && !waited_) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  void signal(int sig) { ::kill(pid_, sig); }
  RunResult wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    waited_ = true;
    RunResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_bytes(out_);
    r.err = read_bytes(err_);
    return r;
  }

 private:
  ScratchDir capture_;
  fs::path out_ = capture_ / "stdout", err_ = capture_ / "stderr";
  pid_t pid_ = -1;
  bool waited_ = false;
};

// Waits (≤ 30 s) for an entry of `dir` whose name starts with `prefix`.
inline bool wait_for_entry(const fs::path& dir, const std::string& prefix) {
  for (int i = 0; i < 3000; ++i) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().filename().string().starts_with(prefix)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace upcycle::test
