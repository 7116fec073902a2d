// Megatron-LM's split strings: "969,30,1" (or "969/30/1", or one number) divides N documents into
// contiguous train/valid/test ranges. Weights are normalised; idx[i+1] = idx[i] + round(w_i·N) with
// Python's round (half to even); the rounding excess is then subtracted from idx[1..3] so idx[3] = N,
// exactly as get_train_valid_test_split_ does, so both tools cut the same documents.
#pragma once
#include <array>
#include <cstdint>
#include <string>

namespace tessera {

// Returns {0, end_train, end_valid, N}: split s is documents [r[s], r[s+1]).
// Throws ConfigError naming data.split and the value for an empty string, a non-number, a NaN,
// infinite or out-of-range weight, a negative weight, more than three weights, or weights whose sum
// is zero or not finite ("1e308,1e308,0").
std::array<std::int64_t, 4> parse_document_split(const std::string& spec, std::int64_t num_documents);

}  // namespace tessera
