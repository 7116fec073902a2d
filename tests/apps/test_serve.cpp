// tessera serve over real HTTP on 127.0.0.1: a tiny model trained here, then serve_client.py (the
// standard library's http.client) starts `tessera serve --port 0`, sends valid, concurrent and
// invalid requests, compares greedy text with `tessera generate`, and stops it with SIGTERM (exit 0).
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
