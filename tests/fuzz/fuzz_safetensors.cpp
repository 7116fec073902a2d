// safetensors files (final weights, checkpoint model and optimizer files): load every mutated file.
// Seeds: files written by save_safetensors with f32/i64 tensors, metadata, an empty tensor.
#include "fuzz_harness.hpp"
#include "tessera/io/safetensors.hpp"
#include "test_util.hpp"

using namespace tessera;

TEST_CASE("fuzz: safetensors", "[fuzz]") {
  test::TempDir dir;
  fuzz::FuzzTarget t;
  t.name = "safetensors";
  {
    const std::string a = dir / "a.safetensors", b = dir / "b.safetensors";
    save_safetensors(a, {{"w", Tensor::full({3, 4}, 0.5f)}, {"step", Tensor::from<std::int64_t>({1}, {7})}},
                     {{"format", "tessera-checkpoint"}, {"iteration", "7"}});
    save_safetensors(b, {{"layers.0.mlp.fc1.weight", Tensor::full({2, 2, 2}, 1.0f)}, {"empty", Tensor::zeros({0, 5})}},
                     {});
    t.seeds = {fuzz::read_file_bytes(a), fuzz::read_file_bytes(b)};
  }
  const std::string path = dir / "fuzz.safetensors";
  t.parse = [&](const fuzz::Bytes& bytes) {
    fuzz::write_file_bytes(path, bytes);
    const SafetensorsFile f = load_safetensors(path);
    for (const auto& [name, tensor] : f.tensors) (void)tensor.nbytes();
  };
  t.iterations = 8000;
  fuzz::run_fuzz(t);
}
