// The sim backend: a simulated accelerator for machines without one. Its tensors live in host
// memory but on another device, so any code outside a backend that reads them (Tensor::data())
// throws, exactly where a CUDA tensor would have crashed or returned garbage; its ops are the
// CPU's kernels, so a run on "sim" must match the CPU bit for bit. It counts host↔device copies and
// synchronisations, so tests can hold the number per iteration small and constant.
//
// New allocations are filled with NaN bytes, as a device's fresh memory holds garbage: code that
// reads memory it never wrote shows up as a loss that differs from the CPU's.
//
// The same library exports "sim_staged": a sim device whose memory MPI cannot read, as a GPU's
// without a CUDA-aware MPI, so that its collectives go through host copies (mpi_communicator.cpp)
// — the path multi-process cuda runs take until NCCL — and must still equal the CPU bit for bit.
//
// TESSERA_SIM_F32_ONLY=1 (read at each query) makes it claim f32 alone for computing ops,
// as a device without bf16/f16 support would: tests check that mixed precision on it is refused
// with a clear error.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <memory>

#include "tessera/backends/cpu_backend.hpp"
#include "tessera/half.hpp"
#include "tessera/plugin.hpp"

namespace tessera::sim {

class SimBackend final : public CpuBackend {
 public:
  SimBackend(std::string name, bool mpi_addressable) : name_(std::move(name)), mpi_addressable_(mpi_addressable) {}
  std::string name() const override { return name_; }
  // sim: MPI reads its memory directly, as NCCL reads a GPU's, so collectives cost no host copies;
  // sim_staged: it cannot.
  bool mpi_addressable() const override { return mpi_addressable_; }
  int device_count() const override { return 1; }
  int auto_priority() const override { return 0; }  // never chosen by device = "auto"
  bool supports(std::string_view op, DType dtype) const override {
    if (f32_only() && is_float_dtype(dtype) && dtype != DType::f32 && op != "copy" && op != "copy_2d" && op != "fill")
      return false;
    return CpuBackend::supports(op, dtype);
  }

  void* allocate(std::size_t bytes, int) override {
    void* p = allocate_host(bytes, counters_, "sim device");
    std::memset(p, 0xff, bytes);
    return p;
  }
  void deallocate(void* p, std::size_t bytes, int) noexcept override { free_host(p, bytes, counters_); }
  MemoryStats memory_stats(int) const override { return stats_of(counters_); }
  void reset_peak_memory(int) override { counters_.peak.store(counters_.current.load()); }

  void copy_from_host(const void* src, Tensor& dst) override {
    ++to_device_;
    std::memcpy(dst.device_raw(), src, dst.nbytes());
  }
  // A read back waits for the device: one synchronisation each.
  void copy_to_host(const Tensor& src, void* dst) override {
    ++to_host_;
    ++synchronizations_;
    std::memcpy(dst, src.device_raw(), src.nbytes());
  }
  void synchronize(int) override { ++synchronizations_; }
  TransferStats transfer_stats() const override { return {to_device_.load(), to_host_.load(), synchronizations_.load()}; }

 private:
  std::string name_;
  bool mpi_addressable_;
  Counters counters_;
  static bool f32_only() {
    const char* v = std::getenv("TESSERA_SIM_F32_ONLY");
    return v && std::string_view(v) == "1";
  }
  std::atomic<std::int64_t> to_device_{0}, to_host_{0}, synchronizations_{0};
};

std::unique_ptr<Backend> make_sim_backend() { return std::make_unique<SimBackend>("sim", true); }
std::unique_ptr<Backend> make_sim_staged_backend() { return std::make_unique<SimBackend>("sim_staged", false); }

}  // namespace tessera::sim

TESSERA_PLUGIN(backend, sim, tessera::sim::make_sim_backend)
TESSERA_PLUGIN(backend, sim_staged, tessera::sim::make_sim_staged_backend)
