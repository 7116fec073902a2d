#include "tessera/batch.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace tessera {

namespace {

std::string list_specs(const FieldSpecs& specs) {
  std::vector<std::string> parts;
  for (const FieldSpec& f : specs) parts.push_back(f.str());
  return parts.empty() ? "nothing" : fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace

std::string FieldSpec::str() const { return fmt::format("{} {}{}", name, dtype_name(dtype), shape_str(sample_shape)); }

const Tensor& Batch::get(std::string_view name) const {
  for (const auto& [n, t] : fields_)
    if (n == name) return t;
  throw Error(fmt::format("the batch has no field '{}' (it has: {})", name,
                          fields_.empty() ? std::string("no fields") : fmt::format("{}", fmt::join(names(), ", "))));
}

void Batch::set(std::string name, Tensor tensor) {
  for (auto& [n, t] : fields_)
    if (n == name) {
      t = std::move(tensor);
      return;
    }
  fields_.emplace_back(std::move(name), std::move(tensor));
}

bool Batch::has(std::string_view name) const {
  return std::any_of(fields_.begin(), fields_.end(), [&](const auto& f) { return f.first == name; });
}

std::vector<std::string> Batch::names() const {
  std::vector<std::string> out;
  for (const auto& f : fields_) out.push_back(f.first);
  return out;
}

void check_batch_fields(const FieldSpecs& consumed, const std::string& consumer, const FieldSpecs& produced,
                        const std::string& producer) {
  for (const FieldSpec& need : consumed) {
    auto it = std::find_if(produced.begin(), produced.end(), [&](const FieldSpec& f) { return f.name == need.name; });
    if (it == produced.end() && need.optional) continue;
    if (it == produced.end())
      throw ConfigError(fmt::format("{} consumes the batch field {}, which {} does not produce (it produces {})",
                                    consumer, need.str(), producer, list_specs(produced)));
    if (it->dtype != need.dtype || it->sample_shape != need.sample_shape)
      throw ConfigError(fmt::format("{} consumes the batch field {}, but {} produces it as {}", consumer, need.str(),
                                    producer, it->str()));
  }
}

}  // namespace tessera
