// Who owns the cores: one setting for OpenMP and OpenBLAS's own pool, so that they never both
// spawn a thread per core (which halves throughput on small machines).
#pragma once

namespace tessera::cpu {
void set_num_threads(int n);
int num_threads();
}  // namespace tessera::cpu
