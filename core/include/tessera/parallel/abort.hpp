// Ending the whole job from one rank. A rank that fails must not simply return: the others would
// wait in their next collective. abort_job logs the rank and the reason and calls MPI_Abort on the
// world, which makes the launcher kill every rank and exit non-zero.
#pragma once
#include <functional>
#include <string>

namespace tessera {

// Logs "rank R of N aborts the job: <reason>" and ends the job with exit_code (MPI_Abort under
// MPI, which mpirun passes on; otherwise _Exit). Safe to call from any thread.
[[noreturn]] void abort_job(const std::string& reason, int exit_code = 1);

// Runs body and returns its result. An exception escaping it aborts the job with its message; so
// does a non-zero result while MPI is still initialised with other ranks, because this rank's
// MPI_Finalize at exit would wait for ranks that wait in a collective for this one (measured: the
// job then ends only at the others' collective deadline). Finalise before returning to opt out.
int run_or_abort(const std::function<int()>& body);

}  // namespace tessera
