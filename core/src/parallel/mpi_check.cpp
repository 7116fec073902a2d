#include "mpi_check.hpp"

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "tessera/half.hpp"
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

namespace {

template <float (*load)(std::uint16_t), std::uint16_t (*store)(float), bool max>
void reduce_half(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const std::uint16_t*>(in);
  auto* b = static_cast<std::uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = load(a[i]), y = load(b[i]);
    b[i] = store(max ? std::max(x, y) : x + y);
  }
}

struct HalfReductions {
  MPI_Datatype bf16 = MPI_DATATYPE_NULL, f16 = MPI_DATATYPE_NULL;
  MPI_Op bf16_sum = MPI_OP_NULL, bf16_max = MPI_OP_NULL, f16_sum = MPI_OP_NULL, f16_max = MPI_OP_NULL;
};

// Made on first use (after MPI_Init) and kept until MPI_Finalize frees them.
const HalfReductions& half_reductions() {
  static const HalfReductions r = [] {
    HalfReductions h;
    for (MPI_Datatype* t : {&h.bf16, &h.f16}) {
      TESSERA_MPI_CHECK(MPI_Type_contiguous(1, MPI_UINT16_T, t));
      TESSERA_MPI_CHECK(MPI_Type_commit(t));
    }
    TESSERA_MPI_CHECK(MPI_Op_create(&reduce_half<bf16_to_float, float_to_bf16, false>, 1, &h.bf16_sum));
    TESSERA_MPI_CHECK(MPI_Op_create(&reduce_half<bf16_to_float, float_to_bf16, true>, 1, &h.bf16_max));
    TESSERA_MPI_CHECK(MPI_Op_create(&reduce_half<f16_to_float, float_to_f16, false>, 1, &h.f16_sum));
    TESSERA_MPI_CHECK(MPI_Op_create(&reduce_half<f16_to_float, float_to_f16, true>, 1, &h.f16_max));
    return h;
  }();
  return r;
}

}  // namespace

MPI_Datatype reduce_datatype(DType t) {
  if (t == DType::bf16) return half_reductions().bf16;
  if (t == DType::f16) return half_reductions().f16;
  return datatype(t);
}

MPI_Op reduce_op(Reduction r, DType t) {
  const bool max = r == Reduction::max;
  if (t == DType::bf16) return max ? half_reductions().bf16_max : half_reductions().bf16_sum;
  if (t == DType::f16) return max ? half_reductions().f16_max : half_reductions().f16_sum;
  return max ? MPI_MAX : MPI_SUM;
}

}  // namespace tessera::mpi
