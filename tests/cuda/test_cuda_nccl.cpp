// The NCCL communicator on one GPU (label cuda; exits 77 — skipped — without a GPU): a world of one
// rank over the one-rank host group, where every collective must leave its data as it was, a
// batched send to itself must arrive, a split group must work, host tensors must go through the
// host group, and a transfer must see the compute stream's work queued before it (events).
#define CATCH_CONFIG_RUNNER
#include <cstdio>
#include <vector>

#include <catch2/catch.hpp>

#include "tessera/backend.hpp"
#include "tessera/error.hpp"
#include "tessera/ops.hpp"
#include "tessera/parallel/local_communicator.hpp"
#include "tessera/plugin.hpp"

using namespace tessera;

namespace {

Device gpu() { return device_named("cuda"); }

PluginPtr<Communicator> nccl_world() {
  return create_plugin<Communicator>("communicator", "nccl", std::make_shared<LocalCommunicator>("world"), gpu());
}

std::vector<float> ramp(std::int64_t n) {
  std::vector<float> v(n);
  for (std::int64_t i = 0; i < n; ++i) v[i] = 0.5f * static_cast<float>(i % 1000) - 7.0f;
  return v;
}

Tensor cast_to(const Tensor& t, DType dtype) {
  Tensor out = Tensor::empty(t.shape(), dtype, t.device());
  ops::cast(t, out);
  return out;
}

std::vector<float> values(const Tensor& t) { return cast_to(t, DType::f32).to(Device::cpu()).to_vector<float>(); }

}  // namespace

TEST_CASE("NCCL collectives of one rank keep the data; the transfer follows compute", "[cuda]") {
  auto world = nccl_world();
  REQUIRE(world->size() == 1);
  const std::int64_t n = 1 << 22;  // large enough that the fill below is still running when NCCL is queued
  Tensor t = Tensor::full({n}, 3.0f, gpu());
  world->all_reduce(t);
  world->all_reduce(t, ReduceOp::max);
  CHECK(t.to(Device::cpu()).to_vector<float>() == std::vector<float>(n, 3.0f));

  for (DType dtype : {DType::f32, DType::bf16, DType::f16, DType::i32}) {
    Tensor in = Tensor::from<float>({1000}, ramp(1000)).to(gpu());
    if (dtype != DType::f32) in = cast_to(in, dtype);
    Tensor gathered = Tensor::empty({1000}, dtype, gpu()), scattered = Tensor::empty({1000}, dtype, gpu());
    world->all_gather(in, gathered);
    world->reduce_scatter(in, scattered);
    world->broadcast(in, 0);
    CHECK(values(gathered) == values(in));
    CHECK(values(scattered) == values(in));
  }
}

TEST_CASE("a batched send to itself arrives; a split group and host tensors work", "[cuda]") {
  auto world = nccl_world();
  Tensor a = Tensor::from<float>({4096}, ramp(4096)).to(gpu());
  Tensor b = Tensor::zeros({4096}, DType::f32, gpu());
  std::vector<CommRequest> done = world->start_batch({{P2POp::Kind::send, a, 0, 0}, {P2POp::Kind::recv, b, 0, 0}});
  for (CommRequest& r : done) r.wait();
  CHECK(b.to(Device::cpu()).to_vector<float>() == ramp(4096));

  std::unique_ptr<Communicator> tp = world->split(0, 0, "tp");
  REQUIRE(tp != nullptr);
  CHECK(tp->describe() == "group 'tp' (rank 0 of 1)");
  tp->all_reduce(b);
  CHECK(b.to(Device::cpu()).to_vector<float>() == ramp(4096));
  CHECK(world->split(-1, 0, "none") == nullptr);

  Tensor host = Tensor::from<float>({3}, {1, 2, 3});
  world->all_reduce(host);  // through the host group
  CHECK(host.to_vector<float>() == std::vector<float>{1, 2, 3});
  Tensor on_gpu = Tensor::zeros({3}, DType::f32, gpu());
  CHECK_THROWS_WITH(world->all_gather(host, on_gpu), Catch::Contains("tensors on the host and on cuda:0"));
}

int main(int argc, char** argv) {
  try {
    if (backend_of(gpu()).device_count() == 0) {
      std::printf("no GPU here (%s): the NCCL tests are skipped\n", backend_of(gpu()).unavailable_reason().c_str());
      return 77;
    }
  } catch (const Error& e) {
    std::printf("the cuda backend does not load here (%s): the NCCL tests are skipped\n", e.what());
    return 77;
  }
  // Loading the plugin needs libnccl.so.2; a CPU device makes its factory refuse before any work.
  try {
    create_plugin<Communicator>("communicator", "nccl", std::make_shared<LocalCommunicator>("world"), Device::cpu());
  } catch (const PluginError& e) {
    std::printf("the nccl plugin does not load here (%s): the NCCL tests are skipped\n", e.what());
    return 77;
  } catch (const ConfigError&) {  // loaded: the refusal expected
  }
  return Catch::Session().run(argc, argv);
}
