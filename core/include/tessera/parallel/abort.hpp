// Ending the whole job from one rank. A rank that fails must not simply return: the others would
// wait in their next collective. abort_job logs the rank and the reason and calls MPI_Abort on the
// world, which makes the launcher kill every rank and exit non-zero.
#pragma once
#include <functional>
#include <string>

namespace tessera {

// Logs "rank R of N aborts the job: <reason>" and ends the job with exit code 1 (MPI_Abort under
// MPI, otherwise _Exit). Safe to call from any thread.
[[noreturn]] void abort_job(const std::string& reason);

// Runs body and returns its result; an exception escaping it aborts the job with its message.
int run_or_abort(const std::function<int()>& body);

}  // namespace tessera
