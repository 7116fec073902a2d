// The training samplers (core/include/tessera/train/data_sampler.hpp) against a transcription of
// Megatron-LM's MegatronPretrainingSampler and MegatronPretrainingRandomSampler run with Debian's
// torch (megatron_sampler_reference.py): every rank's microbatches from a fresh start, from the
// middle of an epoch (a resumed run) and across epochs, with and without data sharding; torch_randperm
// against torch.randperm; the config keys' errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "expect_error.hpp"
#include "test_util.hpp"
#include "tessera/config.hpp"
#include "tessera/data/torch_randperm.hpp"
#include "tessera/error.hpp"
#include "tessera/train/data_sampler.hpp"

using namespace tessera;

namespace {

struct SamplerCase {
  bool cyclic;
  std::int64_t total, micro, dp, rank, consumed;
  bool sharding;
  std::int64_t steps;
};

std::vector<std::int64_t> parse_line(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::int64_t> v;
  for (std::int64_t x; in >> x;) v.push_back(x);
  return v;
}

}  // namespace

TEST_CASE("training samplers equal Megatron-LM's single and cyclic samplers, per rank, resumed and across epochs",
          "[reference]") {
  std::vector<SamplerCase> cases;
  for (bool cyclic : {false, true})
    for (std::int64_t total : {10, 11, 37, 200})
      for (auto [micro, dp] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {2, 1}, {2, 2}, {3, 2}, {1, 4}, {2, 3}})
        for (bool sharding : {true, false}) {
          if (!cyclic && !sharding) continue;  // sharding shapes the cyclic order only
          const std::int64_t block = micro * dp, epoch = total / block * block;
          if (epoch == 0) continue;
          // Fresh, mid-epoch (a resumed run), in a later epoch. Single reads each sample once.
          for (std::int64_t consumed : {std::int64_t{0}, epoch / block / 2 * block, epoch + block}) {
            // Megatron-LM's unsharded order has ⌊total / micro⌋·micro entries; where that passes the
            // epoch's end, its ranks read on into the surplus, unevenly (rank r one more microbatch
            // than a later rank), and its epochs drift from the consumed count. Tessera ends every
            // rank's epoch at the same sample (data_sampler.hpp): compare up to the epoch's end there.
            const bool uneven = cyclic && !sharding && total / micro * micro != epoch;
            const std::int64_t steps = uneven   ? (epoch - consumed % epoch) / block
                                       : cyclic ? 2 * total / block + 3
                                                : (total - consumed) / block;
            if (steps <= 0) continue;
            for (std::int64_t rank = 0; rank < dp; ++rank)
              cases.push_back({cyclic, total, micro, dp, rank, consumed, sharding, steps});
          }
        }
  std::vector<std::string> argv = {"/usr/bin/python3", TESSERA_DATA_TESTS_DIR "/megatron_sampler_reference.py"};
  for (const SamplerCase& c : cases)
    for (const std::string& a :
         {std::string(c.cyclic ? "cyclic" : "single"), std::to_string(c.total), std::to_string(c.micro),
          std::to_string(c.dp), std::to_string(c.rank), std::to_string(c.consumed), std::to_string(c.sharding ? 1 : 0),
          std::to_string(c.steps)})
      argv.push_back(a);
  std::istringstream out(test::run_command(argv));
  std::int64_t crossed_epochs = 0;
  for (const SamplerCase& c : cases) {
    INFO(fmt::format("{} total {} micro {} dp {} rank {} consumed {} sharding {}", c.cyclic ? "cyclic" : "single",
                     c.total, c.micro, c.dp, c.rank, c.consumed, c.sharding));
    const DataSampler sampler({c.cyclic, c.sharding}, c.total, c.micro, c.dp);
    std::string line;
    for (std::int64_t k = 0; k < c.steps; ++k) {
      REQUIRE(std::getline(out, line));
      const std::int64_t consumed = c.consumed + k * c.micro * c.dp;
      INFO("step " << k);
      CHECK(sampler.microbatch(consumed, c.rank) == parse_line(line));
      if (c.cyclic && consumed >= c.total / (c.micro * c.dp) * c.micro * c.dp) ++crossed_epochs;
    }
    REQUIRE(std::getline(out, line));
    REQUIRE(line == "-");
  }
  CHECK(crossed_epochs > 0);
}

TEST_CASE("a cyclic epoch reads distinct samples, every rank as many microbatches", "[unit]") {
  for (bool sharding : {true, false})
    for (auto [total, micro, dp] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{10, 1, 4}, {11, 2, 3}, {37, 1, 4},
                                    {50, 3, 2}}) {
      INFO(fmt::format("total {} micro {} dp {} sharding {}", total, micro, dp, sharding));
      const DataSampler sampler({true, sharding}, total, micro, dp);
      const std::int64_t block = micro * dp, epoch = total / block * block;
      for (std::int64_t e = 0; e < 2; ++e) {
        std::vector<std::int64_t> seen;
        for (std::int64_t consumed = e * epoch; consumed < (e + 1) * epoch; consumed += block)
          for (std::int64_t rank = 0; rank < dp; ++rank)
            for (std::int64_t i : sampler.microbatch(consumed, rank)) seen.push_back(i);
        std::sort(seen.begin(), seen.end());
        CHECK(static_cast<std::int64_t>(seen.size()) == epoch);
        CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
        CHECK(seen.back() < total);
      }
    }
}

TEST_CASE("torch_randperm equals torch.randperm with a seeded CPU generator", "[reference]") {
  const std::vector<std::pair<std::int64_t, std::uint64_t>> runs = {{1, 0}, {2, 1}, {10, 3}, {25, 0}, {1000, 7},
                                                                    {4097, 12345}};
  std::string script = "import torch\nfor n, s in [";
  for (const auto& [n, s] : runs) script += fmt::format("({}, {}),", n, s);
  script +=
      "]:\n  g = torch.Generator(); g.manual_seed(s)\n  print(' '.join(map(str, torch.randperm(n, generator=g).tolist())))\n";
  std::istringstream out(test::run_command({"/usr/bin/python3", "-c", script}));
  for (const auto& [n, s] : runs) {
    std::string line;
    REQUIRE(std::getline(out, line));
    INFO("n " << n << " seed " << s);
    CHECK(torch_randperm(n, s) == parse_line(line));
  }
}

TEST_CASE("dataloader_type and data_sharding: ConfigErrors name the key, its file and the choices", "[unit]") {
  using Catch::Contains;
  const auto read = [](const std::string& text) {
    return read_data_sampler_options(Config::from_string("[training]\n" + text, "run.toml"));
  };
  CHECK_FALSE(read("").cyclic);
  CHECK(read("dataloader_type = \"cyclic\"").cyclic);
  CHECK(read("dataloader_type = \"cyclic\"").data_sharding);
  CHECK_FALSE(read("dataloader_type = \"cyclic\"\ndata_sharding = false").data_sharding);
  CHECK_THAT(message_of<ConfigError>([&] { read("dataloader_type = \"external\""); }),
             Contains("training.dataloader_type") && Contains("run.toml") && Contains("single, cyclic"));
  CHECK_THAT(message_of<ConfigError>([&] { read("data_sharding = false"); }),
             Contains("training.data_sharding") && Contains("run.toml") && Contains("dataloader_type = \"cyclic\""));
  // An epoch needs one micro·dp block.
  CHECK_THAT(message_of<Error>([&] { DataSampler({true, true}, 5, 2, 3); }),
             Contains("6 samples") && Contains("has 5 samples"));
  CHECK_NOTHROW(DataSampler({false, true}, 5, 2, 3));  // single reads until the split runs out
}
