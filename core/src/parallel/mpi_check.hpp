// TESSERA_MPI_CHECK(MPI_Xxx(...)): every MPI return code goes through here. Communicators use
// MPI_ERRORS_RETURN, so a failure comes back as a code and becomes a CommError naming the call.
#pragma once
#include <mpi.h>

#include "tessera/dtype.hpp"

namespace tessera::mpi {

[[noreturn]] void throw_error(int rc, const char* call, const char* file, int line);
// MPI's type for a dtype; bf16/f16 map to 16-bit integers, which move bits but must not be reduced.
MPI_Datatype datatype(DType t);
bool reducible(DType t);

}  // namespace tessera::mpi

#define TESSERA_MPI_CHECK(call)                                                      \
  do {                                                                               \
    int tessera_mpi_rc_ = (call);                                                    \
    if (tessera_mpi_rc_ != MPI_SUCCESS)                                              \
      ::tessera::mpi::throw_error(tessera_mpi_rc_, #call, __FILE__, __LINE__);       \
  } while (0)
