// tessera serve over real HTTP on 127.0.0.1: a tiny model trained here, then serve_client.py (the
// standard library's http.client) starts `tessera serve --port 0`, sends valid, concurrent and
// invalid requests, compares greedy text with `tessera generate`, and stops it with SIGTERM (exit 0).
// Under mpirun (where MPI was found): a tp = 2 server answers as the one-process server does.
#include <catch2/catch.hpp>

#include "tessera_cli.hpp"

using tessera::test::CliRun;
using tessera::test::CliWorkspace;
using tessera::test::run_command;
using tessera::test::tessera_cli;

TEST_CASE("tessera serve answers Megatron's PUT /api over HTTP", "[unit]") {
  CliWorkspace ws;
  const CliRun train = tessera_cli({"train", ws.config});
  INFO(train.output);
  REQUIRE(train.ok());
  int status = 0;
  const std::string out = run_command({"/usr/bin/python3", TESSERA_SOURCE_DIR "/tests/apps/serve_client.py",
                                       tessera::test::kTesseraBinary, ws.save()},
                                      &status, true);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("serve_client: all checks passed") != std::string::npos);
}

#ifdef TESSERA_MPIEXEC_PATH
TEST_CASE("tessera serve --tp 2 under mpirun answers as one process does; SIGTERM to rank 0 stops both", "[unit]") {
  CliWorkspace ws;  // 2 heads, 1 query group: heads split over tp 2, the key/value head replicated
  const CliRun train = tessera_cli({"train", ws.config});
  INFO(train.output);
  REQUIRE(train.ok());
  int status = 0;
  const std::string out = run_command({"/usr/bin/python3", TESSERA_SOURCE_DIR "/tests/apps/serve_client.py",
                                       tessera::test::kTesseraBinary, ws.save(), "--tp", "/usr/bin/env",
                                       "OMP_NUM_THREADS=1", "OMP_WAIT_POLICY=PASSIVE", TESSERA_MPIEXEC_PATH,
                                       "--allow-run-as-root", "--oversubscribe"},
                                      &status, true);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("serve_client: all checks passed") != std::string::npos);
}
#endif
