#include "tessera/kernels/cpu/threads.hpp"

#include <omp.h>

extern "C" void openblas_set_num_threads(int);

namespace tessera::cpu {

namespace {
int g_threads = 0;
}

void set_num_threads(int n) {
  if (n < 1) n = 1;
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int num_threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

}  // namespace tessera::cpu
