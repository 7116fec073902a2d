#include "tessera/io/safetensors.hpp"

#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tessera/error.hpp"

namespace tessera {

namespace {
const char* st_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
  }
  return "?";
}
DType parse_dtype(const std::string& s, const std::filesystem::path& path) {
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8})
    if (s == st_dtype(t)) return t;
  throw FormatError(fmt::format("{}: unsupported safetensors dtype '{}'", path.string(), s));
}
}  // namespace

void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", st_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(fmt::format("cannot open {} for writing", tmp.string()));
    std::uint64_t n = text.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& [name, t] : tensors) out.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
    out.flush();
    if (!out) throw Error(fmt::format("writing {} failed (disk full?)", tmp.string()));
  }
  std::filesystem::rename(tmp, path);
}

SafetensorsFile load_safetensors(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(fmt::format("{}: cannot open safetensors file", path.string()));
  const auto file_size = std::filesystem::file_size(path);
  std::uint64_t n = 0;
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(&n), 8) || n > file_size - 8)
    throw FormatError(fmt::format("{}: truncated safetensors header ({} bytes in file)", path.string(), file_size));
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw FormatError(fmt::format("{}: safetensors header is not valid JSON: {}", path.string(), e.what()));
  }
  SafetensorsFile out;
  const std::uint64_t data_start = 8 + n;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      for (auto& [k, v] : entry.items()) out.metadata[k] = v.get<std::string>();
      continue;
    }
    try {
      Shape shape = entry.at("shape").get<Shape>();
      DType dtype = parse_dtype(entry.at("dtype").get<std::string>(), path);
      auto offsets = entry.at("data_offsets").get<std::vector<std::uint64_t>>();
      Tensor t = Tensor::empty(shape, dtype);
      if (offsets.size() != 2 || offsets[1] - offsets[0] != t.nbytes() || data_start + offsets[1] > file_size)
        throw FormatError(fmt::format("{}: tensor '{}' has data offsets inconsistent with its shape or the file size",
                                      path.string(), name));
      in.seekg(static_cast<std::streamoff>(data_start + offsets[0]));
      in.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
      if (!in) throw FormatError(fmt::format("{}: could not read tensor '{}'", path.string(), name));
      out.tensors.emplace(name, std::move(t));
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(fmt::format("{}: bad header entry for '{}': {}", path.string(), name, e.what()));
    }
  }
  return out;
}

}  // namespace tessera
