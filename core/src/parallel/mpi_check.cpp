#include "mpi_check.hpp"

#include <string_view>

#include "tessera/parallel/communicator.hpp"

namespace tessera::mpi {

void throw_error(int rc, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) length = 0;
  std::string_view name(call);
  name = name.substr(0, name.find('('));  // the function, not its argument list
  throw CommError(fmt::format("{} failed ({}:{}): {}", name, file, line,
                              length > 0 ? std::string(text, length) : fmt::format("error code {}", rc)));
}

MPI_Datatype datatype(DType t) {
  switch (t) {
    case DType::f32: return MPI_FLOAT;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::u8: return MPI_UINT8_T;
    case DType::f64: return MPI_DOUBLE;
    case DType::bf16:
    case DType::f16: return MPI_UINT16_T;
  }
  return MPI_DATATYPE_NULL;
}

bool reducible(DType t) { return t != DType::bf16 && t != DType::f16; }

}  // namespace tessera::mpi
