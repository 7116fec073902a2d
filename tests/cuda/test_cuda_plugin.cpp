// The cuda backend plugin on any machine: it loads by name; without a GPU it reports 0 devices and
// why, `device = "auto"` falls back to the CPU and `device = "cuda"` is a clear error before any work.
#include <string>

#include <catch2/catch.hpp>

#include "tessera/backend.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/parallel/local_communicator.hpp"
#include "tessera/plugin.hpp"
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

TEST_CASE("the nccl communicator plugin is found; it refuses a device that is not a GPU", "[unit]") {
  bool listed = false;
  for (const PluginInfo& p : available_plugins("communicator")) listed = listed || p.name == "nccl";
  if (!listed) return;  // a toolkit without NCCL: the plugin is not built (plugins/communicator_nccl)
  CHECK(backend_of(device_named("cuda")).communicator_plugin() == "nccl");
  CHECK_THROWS_WITH(create_plugin<Communicator>("communicator", "nccl", std::make_shared<LocalCommunicator>("world"),
                                                Device::cpu()),
                    Catch::Contains("the nccl communicator moves CUDA tensors; this run's device is cpu"));
  if (backend_of(device_named("cuda")).device_count() == 0)
    CHECK_THROWS_WITH(create_plugin<Communicator>("communicator", "nccl", std::make_shared<LocalCommunicator>("world"),
                                                  device_named("cuda")),
                      Catch::Contains("no usable GPU"));
}
