#include "tessera/kernels/cpu/threads.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

void set_num_threads(int n) { cpu::set_num_threads(n); }
int num_threads() { return cpu::num_threads(); }

}  // namespace tessera::ops
