#include <catch2/catch.hpp>

#include "tessera/error.hpp"
#include "tessera/tensor.hpp"

using namespace tessera;

TEST_CASE("tensor views share storage and count memory", "[unit]") {
  auto before = memory_stats().current_bytes;
  {
    Tensor t = Tensor::zeros({4, 3});
    REQUIRE(memory_stats().current_bytes - before == 48);
    Tensor r = t.rows(1, 3);
    r.data<float>()[0] = 5.0f;
    REQUIRE(t.data<float>()[3] == 5.0f);
    REQUIRE(r.shape() == Shape{2, 3});
    REQUIRE(t.reshape({-1}).shape() == Shape{12});
    REQUIRE_THROWS_AS(t.reshape({5, -1}), ShapeError);
    REQUIRE_THROWS_AS(t.rows(2, 5), ShapeError);
    REQUIRE_THROWS_AS(t.data<std::int32_t>(), ShapeError);
    Tensor c = t.clone();
    c.data<float>()[3] = 1.0f;
    REQUIRE(t.data<float>()[3] == 5.0f);
  }
  REQUIRE(memory_stats().current_bytes == before);
}
