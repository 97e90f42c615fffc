// Graceful stop on SIGINT/SIGTERM (see stop_signal.h). The handler touches only a volatile
// sig_atomic_t and async-signal-safe calls (sigaction, raise), as POSIX requires of handlers.
// One guard at a time: the flag and the saved actions are process-wide, like the signals themselves.
#include "core/stop_signal.h"

#include <csignal>

#include "core/error.h"

namespace upcycle {
namespace {

volatile std::sig_atomic_t g_signal = 0;  // 0 until the first SIGINT/SIGTERM arrives
bool g_installed = false;                 // a guard lives (touched only outside handlers)
struct sigaction g_previous_int {};
struct sigaction g_previous_term {};

extern "C" void on_stop_signal(int sig) {
  if (g_signal != 0) {
    // Second signal: the user insists. Default action (terminate) and re-raise; the signal stays
    // blocked until this handler returns, then kills the process with the usual wait status.
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    sigaction(sig, &default_action, nullptr);
    raise(sig);
    return;
  }
  g_signal = sig;
}

void install(int sig, struct sigaction* previous) {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  // Block the other stop signal while one is handled, so "first" and "second" are never interleaved.
  sigaddset(&action.sa_mask, SIGINT);
  sigaddset(&action.sa_mask, SIGTERM);
  // SA_RESTART: reads and writes of the running unit of work resume instead of failing with EINTR.
  action.sa_flags = SA_RESTART;
  UPCYCLE_CHECK(sigaction(sig, &action, previous) == 0, "sigaction failed");
}

}  // namespace

StopSignalGuard::StopSignalGuard() {
  UPCYCLE_CHECK(!g_installed, "only one StopSignalGuard may live at a time");
  g_signal = 0;
  install(SIGINT, &g_previous_int);
  install(SIGTERM, &g_previous_term);
  g_installed = true;
}

StopSignalGuard::~StopSignalGuard() {
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
  g_installed = false;
}

bool StopSignalGuard::requested() const { return g_signal != 0; }

int StopSignalGuard::signal() const { return static_cast<int>(g_signal); }

}  // namespace upcycle
