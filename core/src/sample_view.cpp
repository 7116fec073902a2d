#include <algorithm>

#include <fmt/format.h>

#include "tessera/dataset.hpp"

namespace tessera {

void SampleView::add(const FieldSpec& spec, void* data) { fields_.push_back({spec, data}); }

const SampleView::Entry& SampleView::find(std::string_view name, DType dtype) const {
  auto it = std::find_if(fields_.begin(), fields_.end(), [&](const Entry& e) { return e.spec.name == name; });
  if (it == fields_.end()) throw Error(fmt::format("a sample has no field '{}'", name));
  if (it->spec.dtype != dtype)
    throw Error(fmt::format("sample field {} read as {}", it->spec.str(), dtype_name(dtype)));
  return *it;
}

}  // namespace tessera
