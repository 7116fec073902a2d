// Plugin "nccl" (kind "communicator"): the groups of CUDA tensors, chosen by the trainer when the
// run's device names it (Backend::communicator_plugin) or by `[parallel] communicator = "nccl"`.
#include "nccl_communicator.hpp"
#include "tessera/plugin.hpp"

namespace tessera::nccl {

std::unique_ptr<Communicator> make_nccl(std::shared_ptr<Communicator> host_world, Device device) {
  return NcclCommunicator::world(std::move(host_world), device);
}

}  // namespace tessera::nccl

TESSERA_PLUGIN(communicator, nccl, tessera::nccl::make_nccl)
