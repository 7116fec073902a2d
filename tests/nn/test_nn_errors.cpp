// Modules given impossible sizes report them (ConfigError, ShapeError) instead of dividing by zero.
#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "tessera/error.hpp"
#include "tessera/nn/layer_norm.hpp"
#include "tessera/nn/attention.hpp"
#include "tessera/nn/step_context.hpp"

using namespace tessera;

TEST_CASE("Attention rejects head counts before computing anything from them", "[unit]") {
  const auto make = [](std::int64_t hidden, std::int64_t heads, std::int64_t groups) {
    AttentionOptions o;
    o.hidden = hidden;
    o.heads = heads;
    o.query_groups = groups;
    Attention a("attn", o, 1);
  };
  CHECK(message_of<ConfigError>([&] { make(64, 0, 0); }).find("num_attention_heads 0") != std::string::npos);
  CHECK_THROWS_AS(make(64, -4, 0), ConfigError);
  CHECK_THROWS_AS(make(0, 4, 0), ConfigError);
  CHECK_THROWS_AS(make(64, 3, 0), ConfigError);
  CHECK_THROWS_AS(make(64, 4, 3), ConfigError);
  CHECK_NOTHROW(make(64, 4, 2));
}

TEST_CASE("LayerNorm rejects an input with a zero-sized channel dim", "[unit]") {
  LayerNorm ln("ln", 0, 1e-5f);
  ActivationStore store;
  StepContext ctx{store};
  ctx.training = false;
  const std::string msg = message_of<ShapeError>([&] { ln.forward(ctx, Tensor::zeros({2, 0})); });
  CHECK(msg.find("[2, 0]") != std::string::npos);
  LayerNorm ln4("ln4", 4, 1e-5f);
  CHECK_THROWS_AS(ln4.forward(ctx, Tensor::zeros({2, 3})), ShapeError);
}
