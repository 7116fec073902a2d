// TESSERA_MPI_CHECK(MPI_Xxx(...)): every MPI return code goes through here. Communicators use
// MPI_ERRORS_RETURN, so a failure comes back as a code and becomes a CommError naming the call.
#pragma once
#include <mpi.h>

#include "tessera/dtype.hpp"

namespace tessera::mpi {

[[noreturn]] void throw_error(int rc, const char* call, const char* file, int line);
// MPI's type for a dtype; bf16/f16 map to 16-bit integers, which move bits.
MPI_Datatype datatype(DType t);
// The type and op of a sum or max reduction over t: MPI's own for f32, f64 and the integers; for
// bf16 and f16 a 16-bit type of our own whose user-defined ops add (or compare) in f32 and round
// back, as Megatron-LM reduces bf16 activations in bf16.
enum class Reduction { sum, max };
MPI_Datatype reduce_datatype(DType t);
MPI_Op reduce_op(Reduction r, DType t);

}  // namespace tessera::mpi

#define TESSERA_MPI_CHECK(call)                                                      \
  do {                                                                               \
    int tessera_mpi_rc_ = (call);                                                    \
    if (tessera_mpi_rc_ != MPI_SUCCESS)                                              \
      ::tessera::mpi::throw_error(tessera_mpi_rc_, #call, __FILE__, __LINE__);       \
  } while (0)
