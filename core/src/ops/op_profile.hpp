// TESSERA_OP_PROFILE=1: where a run's time goes, op by op, on any backend. Every op dispatch first
// waits for its device to finish the work queued so far and charges the time since the previous
// dispatch on this thread to that previous op (so an op's time is its launch and its device work,
// plus whatever host code ran before the next op); at exit a table lists each op with its dtype,
// calls, total milliseconds and share. Synchronising around every op removes all overlap: the
// profile says which ops are expensive, not how fast the unprofiled run is.
#pragma once
#include "tessera/dtype.hpp"

namespace tessera::ops::detail {

// Whether TESSERA_OP_PROFILE=1 (read once).
bool op_profile_enabled();
// Called by backend_for when profiling: closes the previous op's interval, opens this one's.
void op_profile_mark(const char* op, DType compute, Device device);

}  // namespace tessera::ops::detail
