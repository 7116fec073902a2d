#include "hf_common.hpp"

#include <cstring>

#include <fmt/format.h>

#include "tessera/error.hpp"

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
