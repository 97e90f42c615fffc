// Graceful stop on SIGINT/SIGTERM for long jobs: while a StopSignalGuard lives, the first SIGINT or
// SIGTERM only sets a flag (async-signal-safe) that the job polls between units of work (a training
// step), so it can finish the unit, save, and exit cleanly; a second signal restores the default
// action and re-raises, so an impatient user can still kill the process at once. One guard at a time
// (the flag and the saved actions are process-wide, like the signals).
// Non-goals: other signals, per-thread delivery.
#pragma once

namespace upcycle {

class StopSignalGuard {
 public:
  StopSignalGuard();   // installs the handlers (restores the previous ones on destruction)
  ~StopSignalGuard();
  StopSignalGuard(const StopSignalGuard&) = delete;
  StopSignalGuard& operator=(const StopSignalGuard&) = delete;

  bool requested() const;  // a signal has arrived
  int signal() const;      // which (SIGINT/SIGTERM), 0 if none
};

}  // namespace upcycle
