// What the Hugging Face mappings (hf_config, hf_weights for GPTs; hf_bert) share: host f32 row
// slicing, settings written back as short decimals, reading config.json's keys with their types
// checked, and taking a file's tensors by name with their shapes checked.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tessera/error.hpp"
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

// config.json's keys (`j`, read from `path`), each type-checked: FormatError naming the file and the
// key. A null value counts as missing. `model` ("Tessera's GPT") names what `require` compares with.
struct ConfigReader {
  const nlohmann::json& j;
  const std::string& path;
  std::string model = "Tessera's GPT";
  FormatError bad(const std::string& key, const std::string& why) const;
  bool has(const std::string& key) const { return j.contains(key) && !j.at(key).is_null(); }
  // A positive integer; without `fallback` (< 0) a missing key is an error.
  std::int64_t size(const std::string& key, std::int64_t fallback = -1) const;
  double number(const std::string& key, double fallback) const;  // finite, ≥ 0
  bool flag(const std::string& key, bool fallback) const;
  std::string text(const std::string& key, const std::string& fallback) const;
  // A setting Tessera has one value of: an error saying `expected` unless `ok`.
  void require(const std::string& key, bool ok, const std::string& expected) const;
  std::int64_t token(const std::string& key) const;  // a token id, −1 when missing or not one
};

// Removes `name` from `tensors` and returns it: FormatError naming `where` and the tensor when it is
// missing (a `architecture` model with this config.json has it) or has another shape.
Tensor take_tensor(std::map<std::string, Tensor>& tensors, const std::string& name, const Shape& shape,
                   const std::string& where, const std::string& architecture);

}  // namespace tessera::hf
