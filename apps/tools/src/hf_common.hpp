// What the Hugging Face mappings (hf_config, hf_weights for GPTs; hf_bert) share: host f32 row
// slicing, settings written back as short decimals, and taking a file's tensors by name with their
// shapes checked.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tessera/tensor.hpp"

namespace tessera::hf {

// Rows [begin, end) of a host tensor, copied.
Tensor slice_rows(const Tensor& t, std::int64_t begin, std::int64_t end);
// Host tensors of the same row shape, one after the other.
Tensor cat_rows(const std::vector<Tensor>& parts);

// A float setting as its shortest decimal (1e-5f → 1e-05, not 9.99999974738e-06).
double shortest_decimal(float f);
// A TOML float literal (a decimal point or exponent always).
std::string toml_float(double v);

// Removes `name` from `tensors` and returns it: FormatError naming `where` and the tensor when it is
// missing (a `architecture` model with this config.json has it) or has another shape.
Tensor take_tensor(std::map<std::string, Tensor>& tensors, const std::string& name, const Shape& shape,
                   const std::string& where, const std::string& architecture);

}  // namespace tessera::hf
