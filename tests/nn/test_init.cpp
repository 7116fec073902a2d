// Initialisation is a function of (seed, name, element index) only: any shard of a parameter gets
// exactly the full tensor's values, and the values are normal with the requested std.
#include <cmath>

#include <catch2/catch.hpp>

#include "tessera/nn/init.hpp"

using namespace tessera;

TEST_CASE("init_normal is layout-independent and has the requested statistics", "[unit]") {
  const std::int64_t n = 200001;
  Tensor full = Tensor::empty({n});
  init_normal(full, 0.02f, 42, "layers.0.mlp.fc1.weight");
  for (std::int64_t offset : {0L, 1L, 7L, 100000L}) {
    for (std::int64_t len : {1L, 2L, 13L, 1000L}) {
      Tensor shard = Tensor::empty({len});
      init_normal(shard, 0.02f, 42, "layers.0.mlp.fc1.weight", offset);
      for (std::int64_t i = 0; i < len; ++i) REQUIRE(shard.data<float>()[i] == full.data<float>()[offset + i]);
    }
  }
  double sum = 0, sq = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    sum += full.data<float>()[i];
    sq += full.data<float>()[i] * static_cast<double>(full.data<float>()[i]);
  }
  const double mean = sum / n, std = std::sqrt(sq / n - mean * mean);
  CHECK(std::abs(mean) < 0.02 * 5 / std::sqrt(double(n)));
  CHECK(std == Approx(0.02).epsilon(0.01));
  Tensor other = Tensor::empty({n});
  init_normal(other, 0.02f, 42, "layers.0.mlp.fc2.weight");
  CHECK(other.data<float>()[0] != full.data<float>()[0]);  // names give independent streams
  init_normal(other, 0.02f, 43, "layers.0.mlp.fc1.weight");
  CHECK(other.data<float>()[0] != full.data<float>()[0]);  // seeds too
}
