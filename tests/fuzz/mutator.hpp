// Byte-level mutations for the fuzz tests: deterministic for a given seed, so a failure seen in CI
// is the same failure on every machine. The mix follows what found our crashers by hand: bit flips,
// interesting integers (0, -1, 2^31, 2^63 …) written over 1–8 bytes, truncation, duplicated or
// deleted ranges, repeated structural bytes ('[', '{', '"') and splices of another seed.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace tessera::fuzz {

using Bytes = std::string;

class Mutator {
 public:
  explicit Mutator(std::uint64_t seed) : rng_(seed) {}

  // One to `max_steps` mutations of `input`; `others` supplies splice material.
  Bytes mutate(Bytes input, const std::vector<Bytes>& others, int max_steps = 6) {
    const int steps = 1 + static_cast<int>(below(static_cast<std::uint64_t>(max_steps)));
    for (int s = 0; s < steps; ++s) step(input, others);
    return input;
  }

  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : rng_() % n; }

 private:
  void step(Bytes& b, const std::vector<Bytes>& others) {
    static constexpr std::uint64_t kInteresting[] = {0,
                                                     1,
                                                     0x7f,
                                                     0x80,
                                                     0xff,
                                                     0x7fff,
                                                     0xffff,
                                                     0x7fffffff,
                                                     0x80000000,
                                                     0xffffffff,
                                                     0x100000000ull,
                                                     0x7fffffffffffffffull,
                                                     0x8000000000000000ull,
                                                     0xffffffffffffffffull};
    static constexpr const char* kTokens[] = {"[", "{", "\"", "]", "}", ",", ":", "\\", "\n", "=", "'''", "\"\"\"",
                                              "[[", "1e308", "-", "\xff", "\xc3", "\0", "NaN", "9999999999999999999"};
    const std::size_t n = b.size();
    switch (below(9)) {
      case 0:  // flip a bit
        if (n) b[below(n)] ^= static_cast<char>(1u << below(8));
        break;
      case 1: {  // overwrite 1, 2, 4 or 8 bytes with an interesting integer
        const std::size_t width = std::size_t{1} << below(4);
        if (n >= width) {
          const std::uint64_t v = kInteresting[below(std::size(kInteresting))];
          std::memcpy(b.data() + below(n - width + 1), &v, width);
        }
        break;
      }
      case 2:  // truncate
        b.resize(below(n + 1));
        break;
      case 3: {  // delete a range
        if (n) {
          const std::size_t at = below(n), len = 1 + below(std::min<std::size_t>(n - at, 64));
          b.erase(at, len);
        }
        break;
      }
      case 4: {  // duplicate a range in place
        if (n) {
          const std::size_t at = below(n), len = 1 + below(std::min<std::size_t>(n - at, 256));
          b.insert(at, b.substr(at, len));
        }
        break;
      }
      case 5: {  // insert a structural token, sometimes many times (deep nesting, long runs)
        const std::string tok = kTokens[below(std::size(kTokens))];
        const std::size_t reps = below(4) == 0 ? 1 + below(20000) : 1;
        std::string run;
        for (std::size_t r = 0; r < reps; ++r) run += tok.empty() ? std::string(1, '\0') : tok;
        b.insert(below(n + 1), run);
        break;
      }
      case 6:  // random byte
        if (n) b[below(n)] = static_cast<char>(below(256));
        break;
      case 7: {  // splice: our head, another seed's tail
        if (!others.empty()) {
          const Bytes& o = others[below(others.size())];
          b = b.substr(0, below(n + 1)) + o.substr(below(o.size() + 1));
        }
        break;
      }
      default: {  // change a decimal digit run into another number
        for (int tries = 0; tries < 8 && n; ++tries) {
          const std::size_t at = below(n);
          if (b[at] >= '0' && b[at] <= '9') {
            std::size_t end = at;
            while (end < b.size() && b[end] >= '0' && b[end] <= '9') ++end;
            static constexpr const char* kNumbers[] = {"0", "-1", "4294967296", "9223372036854775807",
                                                       "18446744073709551616", "1e400", "-0"};
            b.replace(at, end - at, kNumbers[below(std::size(kNumbers))]);
            break;
          }
        }
        break;
      }
    }
  }

  std::mt19937_64 rng_;
};

}  // namespace tessera::fuzz
