#include "npy_file.hpp"

#include <cstdio>
#include <cstring>
#include <string_view>

#include "tessera/error.hpp"

namespace tessera::bert_t5_indexed {

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
}  // namespace

void write_npy(const std::string& path, const void* data, int width, std::int64_t rows, std::int64_t cols) {
  std::string header = fmt::format("{{'descr': '<u{}', 'fortran_order': False, 'shape': ({}, {}), }}", width, rows, cols);
  // numpy pads the header with spaces so that magic + version + length + header is a multiple of 64.
  const std::size_t total = kMagicLen + 2 + 2 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  const unsigned char version[2] = {1, 0};
  const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                                static_cast<unsigned char>(header.size() >> 8)};
  const std::size_t bytes = static_cast<std::size_t>(rows * cols * width);
  bool ok = std::fwrite(kMagic, 1, kMagicLen, f) == kMagicLen && std::fwrite(version, 1, 2, f) == 2 &&
            std::fwrite(len, 1, 2, f) == 2 && std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            (bytes == 0 || std::fwrite(data, 1, bytes, f) == bytes);
  ok = std::fflush(f) == 0 && ok;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) throw Error(fmt::format("cannot write {} (disk full?)", path));
}

NpyArray parse_npy(const unsigned char* bytes, std::size_t size, const std::string& path) {
  auto fail = [&](const std::string& what) { return FormatError(fmt::format("{}: not a samples mapping: {}", path, what)); };
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
  NpyArray a;
  const std::string_view descr = dict_value(header, "descr");
  if (descr == "'<u4'") a.width = 4;
  else if (descr == "'<u8'") a.width = 8;
  else throw fail(fmt::format("element type {} (expected '<u4' or '<u8')", descr));
  if (dict_value(header, "fortran_order") != "False") throw fail("not in C order");
  const std::string shape(dict_value(header, "shape"));
  long long r = -1, c = -1;
  if (std::sscanf(shape.c_str(), "(%lld, %lld)", &r, &c) != 2 || r < 0 || c < 0) throw fail("shape " + shape + " is not 2-D");
  a.rows = r;
  a.cols = c;
  a.data_offset = header_start + header_len;
  const long double want = static_cast<long double>(r) * c * a.width;
  if (want != static_cast<long double>(size - a.data_offset))
    throw fail(fmt::format("shape {} needs {} bytes of data, the file holds {}", shape, static_cast<double>(want),
                           size - a.data_offset));
  return a;
}

}  // namespace tessera::bert_t5_indexed
