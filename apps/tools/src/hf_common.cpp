#include "hf_common.hpp"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/io/json_input.hpp"

namespace tessera::hf {

Tensor slice_rows(const Tensor& t, std::int64_t begin, std::int64_t end) { return t.rows(begin, end).clone(); }

Tensor cat_rows(const std::vector<Tensor>& parts) {
  Shape shape = parts.at(0).shape();
  shape[0] = 0;
  for (const Tensor& p : parts) shape[0] += p.size(0);
  Tensor out = Tensor::empty(shape);
  char* dst = static_cast<char*>(out.raw());
  for (const Tensor& p : parts) {
    std::memcpy(dst, p.raw(), p.nbytes());
    dst += p.nbytes();
  }
  return out;
}

double shortest_decimal(float f) { return std::stod(fmt::format("{}", f)); }

std::string toml_float(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

FormatError ConfigReader::bad(const std::string& key, const std::string& why) const {
  return FormatError(fmt::format("{}: '{}' {}", path, key, why));
}

std::int64_t ConfigReader::size(const std::string& key, std::int64_t fallback) const {
  if (!has(key)) {
    if (fallback >= 0) return fallback;
    throw bad(key, "is missing");
  }
  const auto& v = j.at(key);
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() < 1 || v.get<std::uint64_t>() > (1ull << 40))
    throw bad(key, fmt::format("is {}, expected a positive integer", detail::describe_json(v)));
  return v.get<std::int64_t>();
}

double ConfigReader::number(const std::string& key, double fallback) const {
  if (!has(key)) return fallback;
  const auto& v = j.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
    throw bad(key, fmt::format("is {}, expected a non-negative number", detail::describe_json(v)));
  return v.get<double>();
}

bool ConfigReader::flag(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  if (!j.at(key).is_boolean()) throw bad(key, fmt::format("is {}, expected true or false", detail::describe_json(j.at(key))));
  return j.at(key).get<bool>();
}

std::string ConfigReader::text(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  if (!j.at(key).is_string()) throw bad(key, fmt::format("is {}, expected a string", detail::describe_json(j.at(key))));
  return j.at(key).get<std::string>();
}

void ConfigReader::require(const std::string& key, bool ok, const std::string& expected) const {
  if (!ok) throw bad(key, fmt::format("is {}: {} has {} only", detail::describe_json(j.at(key)), model, expected));
}

std::int64_t ConfigReader::token(const std::string& key) const {
  return has(key) && j.at(key).is_number_unsigned() ? j.at(key).get<std::int64_t>() : -1;
}

Tensor take_tensor(std::map<std::string, Tensor>& tensors, const std::string& name, const Shape& shape,
                   const std::string& where, const std::string& architecture) {
  auto it = tensors.find(name);
  if (it == tensors.end())
    throw FormatError(fmt::format("{}: no tensor '{}', which a {} model with this config.json has", where, name,
                                  architecture));
  Tensor t = std::move(it->second);
  tensors.erase(it);
  if (t.shape() != shape)
    throw FormatError(fmt::format("{}: tensor '{}' is {}, config.json makes it {}", where, name, t.str(),
                                  Tensor::empty(shape).str()));
  return t;
}

}  // namespace tessera::hf
