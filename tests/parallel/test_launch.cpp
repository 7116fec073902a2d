// Launcher detection from the environment, and abort_job / run_or_abort in a plain process (run in
// a forked child so that the test binary survives the exit).
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <stdexcept>
#include <string>

#include <catch2/catch.hpp>

#include "tessera/parallel/abort.hpp"
#include "tessera/parallel/mpi_runtime.hpp"

using namespace tessera;

namespace {
LaunchInfo detect(std::map<std::string, std::string> env) {
  return detect_launch([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

struct ChildResult {
  int exit_code = -1;
  std::string stderr_text;
};

// Runs f in a child with stderr captured; f is expected to end the process.
template <typename F>
ChildResult run_in_child(F&& f) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    f();
    _exit(99);  // f did not end the process
  }
  close(fds[1]);
  ChildResult r;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) r.stderr_text.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}
}  // namespace

TEST_CASE("launch detection: mpirun, srun and PMI launchers, not sbatch alone", "[unit]") {
  REQUIRE_FALSE(detect({}).under_launcher);
  auto ompi = detect({{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_RANK", "1"}});
  REQUIRE(ompi.under_launcher);
  REQUIRE(ompi.world_size == 4);
  REQUIRE(ompi.evidence == "OMPI_COMM_WORLD_SIZE=4");
  REQUIRE(ompi.world_rank == 1);
  REQUIRE(detect({{"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_PROCID", "5"}}).world_rank == 5);
  REQUIRE(detect({{"PMI_SIZE", "2"}, {"PMI_RANK", "x"}}).world_rank == 0);  // not a number: unknown
  // An sbatch script sees SLURM_NTASKS but was not started by srun: no MPI.
  REQUIRE_FALSE(detect({{"SLURM_NTASKS", "8"}, {"SLURM_JOB_ID", "12"}}).under_launcher);
  auto srun = detect({{"SLURM_NTASKS", "8"}, {"SLURM_STEP_NUM_TASKS", "8"}});
  REQUIRE(srun.under_launcher);
  REQUIRE(srun.world_size == 8);
  REQUIRE(detect({{"PMI_SIZE", "2"}}).world_size == 2);
  auto pmix = detect({{"PMIX_RANK", "0"}});
  REQUIRE(pmix.under_launcher);
  REQUIRE(pmix.world_size == 1);
  REQUIRE(detect({{"MPI_LOCALNRANKS", "3"}}).under_launcher);
}

TEST_CASE("a plain process gets the one-rank world", "[unit]") {
  if (detect_launch().under_launcher) return;  // this binary was itself started by a launcher
  auto world = make_world_communicator();
  REQUIRE(world->size() == 1);
  REQUIRE(world->name() == "world");
  REQUIRE_FALSE(MpiRuntime::active());
}

TEST_CASE("abort_job and run_or_abort end a plain process with code 1 and the reason", "[unit]") {
  auto aborted = run_in_child([] { abort_job("disk full"); });
  REQUIRE(aborted.exit_code == 1);
  REQUIRE_THAT(aborted.stderr_text, Catch::Contains("rank 0 of 1 aborts the job: disk full"));

  auto thrown = run_in_child([] { run_or_abort([]() -> int { throw std::runtime_error("bad batch"); }); });
  REQUIRE(thrown.exit_code == 1);
  REQUIRE_THAT(thrown.stderr_text, Catch::Contains("aborts the job: bad batch"));

  REQUIRE(run_or_abort([] { return 7; }) == 7);
}
