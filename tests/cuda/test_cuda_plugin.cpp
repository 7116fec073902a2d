// The cuda backend plugin on any machine: it loads by name; without a GPU it reports 0 devices and
// why, `device = "auto"` falls back to the CPU and `device = "cuda"` is a clear error before any work.
#include <string>

#include <catch2/catch.hpp>

#include "tessera/backend.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/tensor.hpp"
#include "tessera/train/trainer.hpp"
#include "training_corpus.hpp"

using namespace tessera;

TEST_CASE("the cuda backend loads by name and says whether it has a GPU", "[unit]") {
  const Device d = device_named("cuda");
  Backend& b = backend_of(d);
  CHECK(b.name() == "cuda");
  CHECK_FALSE(b.mpi_addressable());
  CHECK(b.supports("matmul", DType::bf16));
  CHECK(b.supports("attention_forward", DType::f16));
  CHECK_FALSE(b.supports("adam_step", DType::bf16));
  CHECK_FALSE(b.supports("arange_mod", DType::f32));
  if (b.device_count() > 0) {
    CHECK(b.unavailable_reason().empty());
    CHECK(resolve_device("auto") == d);  // an accelerator with a device wins
    return;
  }
  // No GPU here: the reason is CUDA's own words, auto means the CPU, and a tensor cannot go there.
  INFO(b.unavailable_reason());
  CHECK_FALSE(b.unavailable_reason().empty());
  CHECK(resolve_device("auto") == Device::cpu());
  CHECK_THROWS_WITH(Tensor::zeros({4}, DType::f32, d), Catch::Contains("no usable GPU"));
  CHECK_THROWS_WITH(Trainer(Config::from_string(small_gpt_sections(2) + "[training]\ndevice = \"cuda\"\n", "gpu.toml")),
                    Catch::Contains("training.device = cuda in gpu.toml") &&
                        Catch::Contains("the cuda backend loads but has no device here"));
}
