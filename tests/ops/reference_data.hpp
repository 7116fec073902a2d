// Loads the PyTorch reference cases that reference_ops.py writes (run once per test process).
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tessera/tensor.hpp"

namespace tessera::test {

struct RefCase {
  std::string op, name;
  nlohmann::json params;
  nlohmann::json arrays;
  bool has(const std::string& key) const { return arrays.contains(key); }
  Tensor load(const std::string& key) const;  // fresh tensor (safe to modify)
};

// All cases of one op; generates the data on first use (fails the test if python/torch fail).
std::vector<RefCase> reference_cases(const std::string& op);

// ‖a − b‖ / ‖b‖ in double (‖a − b‖ when b is all zeros).
double rel_err(const Tensor& a, const Tensor& b);

}  // namespace tessera::test
