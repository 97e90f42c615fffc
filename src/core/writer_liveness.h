// "Is the process that left this temp file still writing?" — one answer for every kind of leftover:
// the atomic files' `.NAME.tmp.PID` (core/file_util.cpp) and the staging directories'
// `.NAME.tmp-PID-N` / `.NAME.old-PID-N` (io/stale_staging.cpp). Both are removed only when their
// writer is provably dead, so a wrong "dead" would delete a live writer's output.
#pragma once

namespace upcycle {

// False when `pid` is provably not a live writer of ours: the PID no longer exists, it is a zombie (a
// killed process its parent has not reaped yet), or it now runs another program than this one (the
// PID was reused). True otherwise, including this process itself and an unreadable /proc. Same-host
// semantics: on a filesystem shared between machines a PID says nothing.
bool writer_may_be_alive(long pid);

}  // namespace upcycle
