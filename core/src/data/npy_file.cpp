#include "tessera/data/npy_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

namespace {
constexpr char kMagic[] = "\x93NUMPY";  // 6 bytes, then major and minor version
constexpr std::size_t kMagicLen = 6;

// The value after 'key': in numpy's header dict, up to the next ',' outside parentheses.
std::string_view dict_value(std::string_view header, std::string_view key) {
  std::string quoted(1, '\'');
  quoted.append(key).push_back('\'');
  std::size_t at = header.find(quoted);
  if (at == std::string_view::npos) return {};
  at = header.find(':', at + quoted.size());
  if (at == std::string_view::npos) return {};
  std::size_t begin = at + 1;
  while (begin < header.size() && header[begin] == ' ') ++begin;
  int depth = 0;
  std::size_t end = begin;
  for (; end < header.size(); ++end) {
    const char c = header[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if ((c == ',' && depth == 0) || c == '}') break;
  }
  return header.substr(begin, end - begin);
}

constexpr NpyDtype kAll[] = {NpyDtype::u1, NpyDtype::i2, NpyDtype::i4, NpyDtype::u4, NpyDtype::i8, NpyDtype::u8};
}  // namespace

int npy_dtype_size(NpyDtype t) {
  switch (t) {
    case NpyDtype::u1: return 1;
    case NpyDtype::i2: return 2;
    case NpyDtype::i4:
    case NpyDtype::u4: return 4;
    case NpyDtype::i8:
    case NpyDtype::u8: return 8;
  }
  return 0;
}

const char* npy_descr(NpyDtype t) {
  switch (t) {
    case NpyDtype::u1: return "|u1";
    case NpyDtype::i2: return "<i2";
    case NpyDtype::i4: return "<i4";
    case NpyDtype::u4: return "<u4";
    case NpyDtype::i8: return "<i8";
    case NpyDtype::u8: return "<u8";
  }
  return "?";
}

std::int64_t NpyHeader::numel() const {
  std::int64_t n = 1;
  for (const std::int64_t d : shape) n *= d;
  return n;
}

void write_npy(const std::string& path, const void* data, NpyDtype dtype, const std::vector<std::int64_t>& shape) {
  std::string dims;  // as numpy writes it: (n,) for 1-D, (a, b) otherwise
  for (const std::int64_t d : shape) dims += fmt::format("{}{}", dims.empty() ? "" : " ", d) + ",";
  if (shape.size() > 1) dims.pop_back();
  std::string header =
      fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", npy_descr(dtype), dims);
  // numpy pads the header with spaces so that magic + version + length + header is a multiple of 64.
  const std::size_t total = kMagicLen + 2 + 2 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  const unsigned char version[2] = {1, 0};
  const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                                static_cast<unsigned char>(header.size() >> 8)};
  NpyHeader h;
  h.shape = shape;
  const std::size_t bytes = static_cast<std::size_t>(h.numel() * npy_dtype_size(dtype));
  bool ok = std::fwrite(kMagic, 1, kMagicLen, f) == kMagicLen && std::fwrite(version, 1, 2, f) == 2 &&
            std::fwrite(len, 1, 2, f) == 2 && std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            (bytes == 0 || std::fwrite(data, 1, bytes, f) == bytes);
  ok = std::fflush(f) == 0 && ok;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) throw Error(fmt::format("cannot write {} (disk full?)", path));
}

NpyHeader parse_npy(const unsigned char* bytes, std::size_t size, const std::string& path) {
  auto fail = [&](const std::string& what) { return FormatError(fmt::format("{}: not a usable .npy array: {}", path, what)); };
  if (size < kMagicLen + 4 || std::memcmp(bytes, kMagic, kMagicLen) != 0) throw fail("no .npy magic");
  const unsigned major = bytes[6];
  std::size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = bytes[8] | (static_cast<std::size_t>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) throw fail("truncated header");
    header_len = bytes[8] | (static_cast<std::size_t>(bytes[9]) << 8) | (static_cast<std::size_t>(bytes[10]) << 16) |
                 (static_cast<std::size_t>(bytes[11]) << 24);
    header_start = 12;
  } else {
    throw fail(fmt::format(".npy version {} is unknown", major));
  }
  if (header_start + header_len > size) throw fail("truncated header");
  const std::string_view header(reinterpret_cast<const char*>(bytes + header_start), header_len);
  NpyHeader h;
  const std::string_view descr = dict_value(header, "descr");
  bool known = false;
  for (const NpyDtype t : kAll) {
    const std::string d = fmt::format("'{}'", npy_descr(t));
    // A one-byte type is '|u1' in numpy's header; '<u1' means the same.
    if (descr == d || (npy_dtype_size(t) == 1 && descr == fmt::format("'<{}'", npy_descr(t) + 1))) {
      h.dtype = t;
      known = true;
    }
  }
  if (!known) throw fail(fmt::format("element type {} (expected a little-endian integer type)", descr));
  if (dict_value(header, "fortran_order") != "False") throw fail("not in C order");
  const std::string_view shape = dict_value(header, "shape");
  if (shape.size() < 2 || shape.front() != '(' || shape.back() != ')') throw fail(fmt::format("shape {}", shape));
  long double want = npy_dtype_size(h.dtype);
  for (std::size_t at = 1; at + 1 < shape.size();) {
    while (at + 1 < shape.size() && (shape[at] == ' ' || shape[at] == ',')) ++at;
    if (at + 1 >= shape.size()) break;
    std::size_t end = at;
    while (end + 1 < shape.size() && shape[end] >= '0' && shape[end] <= '9') ++end;
    if (end == at || end - at > 18) throw fail(fmt::format("shape {}", shape));
    h.shape.push_back(std::stoll(std::string(shape.substr(at, end - at))));
    want *= static_cast<long double>(h.shape.back());
    at = end;
  }
  h.data_offset = header_start + header_len;
  if (want != static_cast<long double>(size - h.data_offset))
    throw fail(fmt::format("shape {} needs {} bytes of data, the file holds {}", shape, static_cast<double>(want),
                           size - h.data_offset));
  return h;
}

MappedNpy MappedNpy::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FormatError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size == 0) {
    ::close(fd);
    throw FormatError(fmt::format("{}: empty or unreadable", path));
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw FormatError(fmt::format("{}: cannot map: {}", path, std::strerror(errno)));
  MappedNpy m;
  m.owner_ = std::shared_ptr<const void>(p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
  const auto* bytes = static_cast<const unsigned char*>(p);
  m.header_ = parse_npy(bytes, size, path);
  m.data_ = bytes + m.header_.data_offset;
  m.path_ = path;
  return m;
}

std::int64_t MappedNpy::at(std::int64_t i) const {
  const unsigned char* p = data_ + static_cast<std::size_t>(i) * static_cast<std::size_t>(npy_dtype_size(dtype()));
  switch (dtype()) {
    case NpyDtype::u1: return *p;
    case NpyDtype::i2: { std::int16_t v; std::memcpy(&v, p, 2); return v; }
    case NpyDtype::i4: { std::int32_t v; std::memcpy(&v, p, 4); return v; }
    case NpyDtype::u4: { std::uint32_t v; std::memcpy(&v, p, 4); return v; }
    case NpyDtype::i8: { std::int64_t v; std::memcpy(&v, p, 8); return v; }
    case NpyDtype::u8: { std::uint64_t v; std::memcpy(&v, p, 8); return static_cast<std::int64_t>(v); }
  }
  return 0;
}

}  // namespace tessera
