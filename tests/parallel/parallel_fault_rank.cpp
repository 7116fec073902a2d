// A job in which the last rank fails while the others wait in an all_reduce; run_fault_test.sh
// launches it under mpirun and checks that the whole job ends, non-zero, in bounded time.
//   throw    the failing rank throws; run_or_abort → abort_job → MPI_Abort
//   sigkill  the failing rank is killed by SIGKILL (no chance to say anything)
//   stall    the failing rank never joins; the others' collective deadline aborts the job
//   exit     the failing rank returns 3 without joining; run_or_abort turns that into abort_job
#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "tessera/parallel/abort.hpp"
#include "tessera/parallel/mpi_communicator.hpp"
#include "tessera/parallel/mpi_runtime.hpp"

using namespace tessera;

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  return run_or_abort([&] {
    MpiRuntime::init();
    auto world = MpiCommunicator::world();
    world->barrier();
    const int failing = world->size() - 1;
    if (world->rank() != failing) {
      Tensor t = Tensor::full({1000}, 1.0f);
      std::printf("rank %d: entering all_reduce\n", world->rank());
      std::fflush(stdout);
      world->all_reduce(t);
      std::printf("rank %d: all_reduce returned, which it must not\n", world->rank());
      return 0;
    }
    // Give the others time to be inside the all_reduce.
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (mode == "throw") throw std::runtime_error("injected failure on rank " + std::to_string(failing));
    if (mode == "sigkill") std::raise(SIGKILL);
    if (mode == "stall") std::this_thread::sleep_for(std::chrono::minutes(10));
    if (mode == "exit") return 3;
    throw std::invalid_argument("usage: parallel_fault_rank throw|sigkill|stall|exit");
  });
}
