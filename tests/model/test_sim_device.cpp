// The simulated device (plugins/backend_sim): host memory that counts as another device. No code
// outside a backend may read it; training on it equals the CPU bit for bit; host↔device copies and
// synchronisations per iteration are few and do not grow with the number of layers.
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tessera/backend.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/ops.hpp"
#include "tessera/train/trainer.hpp"
#include "device_traffic.hpp"
#include "training_corpus.hpp"

using namespace tessera;

namespace {

std::string config_text(int layers, const std::string& device, std::int64_t iters = 3) {
  return small_gpt_run(layers, device, iters);
}

Device sim() { return device_named("sim"); }

}  // namespace

TEST_CASE("a sim tensor cannot be read from the host, only copied", "[unit]") {
  Tensor t = Tensor::full({3}, 2.5f, sim());
  CHECK(t.device() == sim());
  CHECK(t.device().str() == "sim:0");
  CHECK_THROWS_WITH(t.data<float>(), Catch::Contains("host access to tensor f32[3] on sim:0"));
  CHECK_THROWS_AS(t.raw(), Error);
  const TransferStats before = backend_of(sim()).transfer_stats();
  const std::vector<float> back = t.to_vector<float>();
  CHECK(back == std::vector<float>{2.5f, 2.5f, 2.5f});
  Tensor host = Tensor::from<float>({3}, {1, 2, 3});
  Tensor there = host.to(sim());
  CHECK(there.to(Device::cpu()).to_vector<float>() == std::vector<float>{1, 2, 3});
  const TransferStats after = backend_of(sim()).transfer_stats();
  CHECK(after.to_host - before.to_host == 2);
  CHECK(after.to_device - before.to_device == 1);
  CHECK(after.synchronizations - before.synchronizations == 2);
  CHECK(memory_stats(sim()).current_bytes >= 24);
}

TEST_CASE("an op on tensors of two devices names both", "[unit]") {
  Tensor a = Tensor::full({4}, 1.0f), b = Tensor::full({4}, 2.0f, sim()), out = Tensor::zeros({4}, DType::f32, sim());
  CHECK_THROWS_WITH(ops::add(a, b, out), Catch::Contains("add: tensor 'b' is on sim:0 but tensor 'a' is on cpu"));
  ops::add(b, b, out);
  CHECK(out.to_vector<float>() == std::vector<float>{4, 4, 4, 4});
  // copy is the one op that crosses devices.
  ops::copy(a, out);
  CHECK(out.to_vector<float>() == std::vector<float>{1, 1, 1, 1});
}

TEST_CASE("an unknown device names the backends there are", "[unit]") {
  CHECK_THROWS_WITH(device_named("no_such_backend"), Catch::Contains("sim"));
  CHECK(resolve_device("auto") == Device::cpu());  // sim is never chosen by auto
  CHECK(resolve_device("cpu") == Device::cpu());
}

TEST_CASE("an unknown [training] device names the key, the file and the choices", "[unit]") {
  CHECK_THROWS_WITH(Trainer(Config::from_string(config_text(2, "cudaa"), "run.toml")),
                    Catch::Contains("training.device = cudaa in run.toml") && Catch::Contains("\"cpu\", \"auto\"") &&
                        Catch::Contains("available backend plugins: ") && Catch::Contains("sim (libtessera_backend_sim.so)"));
}

TEST_CASE("[parallel] communicator: a name that is no plugin lists the choices; mpi and auto train", "[unit]") {
  CHECK_THROWS_WITH(Trainer(Config::from_string(config_text(2, "sim") + "[parallel]\ncommunicator = \"ncl\"\n", "run.toml")),
                    Catch::Contains("parallel.communicator = ncl in run.toml is not one of: \"auto\", \"mpi\""));
  log_state().level = LogLevel::warn;
  for (const char* choice : {"auto", "mpi"}) {
    Trainer t(Config::from_string(config_text(2, "sim") + fmt::format("[parallel]\ncommunicator = \"{}\"\n", choice),
                                  "run.toml"));
    CHECK(t.train().losses.size() == 3);
  }
}

TEST_CASE("training on the sim device equals the CPU bit for bit", "[unit]") {
  log_state().level = LogLevel::warn;
  Trainer on_cpu(Config::from_string(config_text(2, "cpu"), "cpu.toml"));
  Trainer on_sim(Config::from_string(config_text(2, "sim"), "sim.toml"));
  const TrainingRecord a = on_cpu.train(), b = on_sim.train();
  REQUIRE(a.losses.size() == 3);
  CHECK(a.losses == b.losses);
  CHECK(a.grad_norms == b.grad_norms);
}

TEST_CASE("host-device copies and syncs per iteration are few and independent of depth", "[unit]") {
  log_state().level = LogLevel::warn;
  const TransferStats two = traffic_per_iteration("sim", 2), six = traffic_per_iteration("sim", 6);
  CHECK(two.to_device == six.to_device);
  CHECK(two.to_host == six.to_host);
  CHECK(two.synchronizations == six.synchronizations);
  // 2 microbatches: 3 batch fields up each; per microbatch Σ mask and the loss down; the grad norm down.
  CHECK(two.to_device == 2 * 3);
  CHECK(two.to_host == 2 * 2 + 1);
  CHECK(two.synchronizations == two.to_host);
}

TEST_CASE("the shared expert's gate runs on the device: no host copies beyond the ungated expert's", "[unit]") {
  log_state().level = LogLevel::warn;
  const std::string moe = "num_experts = 4\nmoe_router_topk = 2\nmoe_shared_expert_intermediate_size = 16\n";
  const TransferStats ungated = traffic_per_iteration("sim", 2, moe);
  const TransferStats gated = traffic_per_iteration("sim", 2, moe + "moe_shared_expert_gate = true\n");
  CHECK(gated.to_device == ungated.to_device);
  CHECK(gated.to_host == ungated.to_host);
  CHECK(gated.synchronizations == ungated.synchronizations);
}
