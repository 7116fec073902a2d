// numpy's np.random.default_rng(seed): a SeedSequence hashing the seed into the state of a PCG64
// (the 128-bit LCG with the XSL-RR output), and Generator.integers(low, high, dtype=np.int32) drawn
// from it. Megatron-Core's mock GPT data (--mock-data) draws its documents' lengths so; reproducing
// the draws bit for bit gives Tessera the same mock corpus.
//
//   SeedSequence(seed)  the seed's 32-bit words hashed into a pool of 4 (hashmix/mix, numpy's
//                       constants); generate_state(4, uint64) hashes the pool into 8 more words.
//   PCG64               state = 0, inc = (initseq << 1) | 1; step; state += initstate; step — with
//                       initstate = words 0–1 and initseq = words 2–3 as 128-bit numbers (high first).
//                       Each draw steps state = state·M + inc and outputs
//                       rotr64(hi ^ lo, state >> 122); 32-bit draws use the low half, then the high.
//   integers(lo, hi)    lo + Lemire's bounded draw on 32-bit outputs over [0, hi − lo), rejecting
//                       below (2^32 − range) mod range.
#pragma once
#include <cstdint>
#include <vector>

namespace tessera {

class NumpyDefaultRng {
 public:
  explicit NumpyDefaultRng(std::uint64_t seed);
  std::uint64_t next64();
  std::uint32_t next32();
  // n draws of Generator.integers(low, high, size=n, dtype=np.int32): uniform in [low, high).
  std::vector<std::int32_t> integers_int32(std::int32_t low, std::int32_t high, std::int64_t n);

 private:
  unsigned __int128 state_ = 0, inc_ = 0;
  bool has_uint32_ = false;
  std::uint32_t uinteger_ = 0;
};

}  // namespace tessera
