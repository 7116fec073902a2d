// Argument checks shared by every Communicator, so that the one-rank group rejects exactly what
// MPI (and later NCCL) would, with the same messages. All of them are local: a bad call throws on
// the calling rank before any transfer starts.
#pragma once
#include "tessera/parallel/communicator.hpp"

namespace tessera::comm_checks {

// t is defined and, when host_addressed, in memory MPI may read (backend_of(device).mpi_addressable()).
void tensor(const Communicator& c, const char* op, const Tensor& t, bool host_addressed);
// host_addressed as for tensor(): MPI reads the memory itself; the one-rank group only copies.
void reduce_scatter(const Communicator& c, const Tensor& in, const Tensor& out, bool host_addressed = true);
void all_gather(const Communicator& c, const Tensor& in, const Tensor& out, bool host_addressed = true);
void root(const Communicator& c, const char* op, int root);
void peer(const Communicator& c, const char* op, int peer, int tag);

}  // namespace tessera::comm_checks
