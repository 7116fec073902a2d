#include "tessera/io/safetensors.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#define XXH_INLINE_ALL
#if defined(__AVX512F__)
// GCC 12 warns (-Wmaybe-uninitialized) inside its own AVX-512 intrinsics as xxHash's AVX-512 path
// uses them; the AVX2 path is as fast for checkpoint-sized data.
#define XXH_VECTOR XXH_AVX2
#endif
#include <xxhash.h>

#include "tessera/error.hpp"
#include "tessera/io/input_file.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/quote.hpp"

namespace tessera {

namespace {
constexpr std::uint64_t kMaxSafetensorsHeader = 100'000'000;

const char* st_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
    case DType::f64: return "F64";
  }
  return "?";
}
DType parse_dtype(const std::string& s, const std::filesystem::path& path) {
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8, DType::f64})
    if (s == st_dtype(t)) return t;
  throw FormatError(fmt::format("{}: unsupported safetensors dtype {}", path.string(), quote_untrusted(s)));
}

// XXH3-64 over a sequence of byte ranges, as one stream.
class DataHash {
 public:
  DataHash() : state_(XXH3_createState()) {
    if (!state_) throw std::bad_alloc();
    XXH3_64bits_reset(state_);
  }
  ~DataHash() { XXH3_freeState(state_); }
  DataHash(const DataHash&) = delete;
  DataHash& operator=(const DataHash&) = delete;
  void add(const void* data, std::size_t size) { XXH3_64bits_update(state_, data, size); }
  std::string hex() const { return fmt::format("{:016x}", XXH3_64bits_digest(state_)); }

 private:
  XXH3_state_t* state_;
};
}  // namespace

void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  // The checksum is known once the data is written: its 16 digits are a placeholder until then, so
  // each (device) tensor is copied to the host once, one at a time.
  std::map<std::string, std::string> meta = metadata;
  const std::string placeholder(16, '0');
  meta[kSafetensorsChecksumKey] = placeholder;
  header["__metadata__"] = meta;
  std::size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", st_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  const std::size_t checksum_at =
      text.find(fmt::format("\"{}\":\"{}\"", kSafetensorsChecksumKey, placeholder)) + std::strlen(kSafetensorsChecksumKey) + 4;
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(fmt::format("cannot open {} for writing", tmp.string()));
    std::uint64_t n = text.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    DataHash hash;
    for (const auto& [name, t] : tensors) {
      const Tensor host = t.to(Device::cpu());
      hash.add(host.raw(), host.nbytes());
      out.write(static_cast<const char*>(host.raw()), static_cast<std::streamsize>(host.nbytes()));
    }
    out.seekp(static_cast<std::streamoff>(8 + checksum_at));
    out.write(hash.hex().data(), 16);
    out.flush();
    if (!out) {
      out.close();
      std::error_code ec;
      std::filesystem::remove(tmp, ec);  // a partial file helps nobody and fills the disk further
      throw Error(fmt::format("writing {} failed (disk full?); {} is unchanged", tmp.string(), path.string()));
    }
  }
  std::filesystem::rename(tmp, path);
}

SafetensorsFile load_safetensors(const std::filesystem::path& path) {
  require_regular_file(path, "safetensors file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(fmt::format("{}: cannot open safetensors file", path.string()));
  const auto file_size = std::filesystem::file_size(path);
  std::uint64_t n = 0;
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(&n), 8) || n > file_size - 8)
    throw FormatError(fmt::format("{}: truncated safetensors header ({} bytes in file)", path.string(), file_size));
  // The safetensors format caps its JSON header at 100 MB (as its reference reader does).
  if (n > kMaxSafetensorsHeader)
    throw FormatError(fmt::format("{}: safetensors header of {} bytes is larger than the format's limit of {}",
                                  path.string(), n, kMaxSafetensorsHeader));
  std::string text(n, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(n)))
    throw FormatError(fmt::format("{}: could not read the safetensors header", path.string()));
  const nlohmann::json header = detail::parse_untrusted_json(text, path.string() + ": safetensors header");
  if (!header.is_object())
    throw FormatError(fmt::format("{}: safetensors header is not a JSON object", path.string()));

  // Everything is validated before anything is allocated: a corrupt or hostile header must give a
  // FormatError, never a huge allocation or a read past the end of the file.
  struct Entry {
    std::string name;
    Shape shape;
    DType dtype;
    std::uint64_t begin, end;
  };
  SafetensorsFile out;
  std::vector<Entry> entries;
  const std::uint64_t data_size = file_size - 8 - n;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        throw FormatError(fmt::format("{}: __metadata__ is not a JSON object of strings", path.string()));
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string())
          throw FormatError(fmt::format("{}: __metadata__ value for {} is {}, not a string", path.string(),
                                        quote_untrusted(k), v.type_name()));
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const auto bad = [&](const std::string& why) {
      return FormatError(fmt::format("{}: tensor {}: {}", path.string(), quote_untrusted(name), why));
    };
    if (!entry.is_object()) throw bad("header entry is not a JSON object");
    if (!entry.contains("shape") || !entry.contains("dtype") || !entry.contains("data_offsets"))
      throw bad("header entry needs 'shape', 'dtype' and 'data_offsets'");
    const auto& jshape = entry["shape"];
    const auto& jdtype = entry["dtype"];
    const auto& joffsets = entry["data_offsets"];
    if (!jshape.is_array()) throw bad("'shape' is not an array");
    if (!jdtype.is_string()) throw bad("'dtype' is not a string");
    Entry e{name, {}, parse_dtype(jdtype.get<std::string>(), path), 0, 0};
    std::uint64_t numel = 1;
    for (const auto& d : jshape) {
      // Non-negative integers parse as unsigned; negatives and fractions are rejected here.
      if (!d.is_number_unsigned() || d.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        throw bad(fmt::format("shape {} has a dimension that is not a non-negative 64-bit integer", detail::describe_json(jshape)));
      const std::uint64_t dim = d.get<std::uint64_t>();
      if (__builtin_mul_overflow(numel, dim, &numel) || numel > static_cast<std::uint64_t>(INT64_MAX))
        throw bad(fmt::format("shape {} has more elements than fit in 64 bits", detail::describe_json(jshape)));
      e.shape.push_back(static_cast<std::int64_t>(dim));
    }
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(dtype_size(e.dtype)), &bytes))
      throw bad(fmt::format("shape {} is too large: its size in bytes overflows", detail::describe_json(jshape)));
    if (!joffsets.is_array() || joffsets.size() != 2 || !joffsets[0].is_number_unsigned() ||
        !joffsets[1].is_number_unsigned())
      throw bad(fmt::format("'data_offsets' {} is not two non-negative integers", detail::describe_json(joffsets)));
    e.begin = joffsets[0].get<std::uint64_t>();
    e.end = joffsets[1].get<std::uint64_t>();
    if (e.end < e.begin) throw bad(fmt::format("data_offsets [{}, {}] end before they begin", e.begin, e.end));
    if (e.end > data_size)
      throw bad(fmt::format("data_offsets [{}, {}] reach past the end of the data ({} bytes)", e.begin, e.end, data_size));
    if (e.end - e.begin != bytes)
      throw bad(fmt::format("data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {}", e.begin, e.end,
                            e.end - e.begin, detail::describe_json(jshape), jdtype.get<std::string>(), bytes));
    entries.push_back(std::move(e));
  }
  // Tensors must not share bytes (empty tensors take none).
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  for (std::size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->begin < by_offset[i - 1]->end)
      throw FormatError(fmt::format("{}: tensors {} and {} have overlapping data_offsets", path.string(),
                                    quote_untrusted(by_offset[i - 1]->name), quote_untrusted(by_offset[i]->name)));

  const std::uint64_t data_start = 8 + n;
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    in.seekg(static_cast<std::streamoff>(data_start + e.begin));
    in.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
    if (!in) throw FormatError(fmt::format("{}: could not read tensor {}", path.string(), quote_untrusted(e.name)));
    out.tensors.emplace(e.name, std::move(t));
  }
  const auto saved = out.metadata.find(kSafetensorsChecksumKey);
  if (saved != out.metadata.end()) {
    DataHash hash;  // the tensors in file order: the data section as written
    for (const Entry* e : by_offset) {
      const Tensor& t = out.tensors.at(e->name);
      hash.add(t.raw(), t.nbytes());
    }
    if (hash.hex() != saved->second)
      throw FormatError(fmt::format("{}: the data does not match the checksum written with it ({} {} in the header, {} "
                                    "of the data): the file is damaged (a disk error, an interrupted copy?); use "
                                    "another checkpoint or a good copy of this file",
                                    path.string(), kSafetensorsChecksumKey, quote_untrusted(saved->second), hash.hex()));
  }
  return out;
}

}  // namespace tessera
