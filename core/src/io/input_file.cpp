#include "tessera/io/input_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

namespace {

const char* kind_of(mode_t mode) {
  if (S_ISREG(mode)) return "regular file";
  if (S_ISDIR(mode)) return "directory";
  if (S_ISFIFO(mode)) return "FIFO (named pipe)";
  if (S_ISCHR(mode)) return "character device";
  if (S_ISBLK(mode)) return "block device";
  if (S_ISSOCK(mode)) return "socket";
  return "special file";
}

}  // namespace

std::string file_kind(const std::filesystem::path& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return "missing file or broken link";
  return kind_of(st.st_mode);
}

void require_regular_file(const std::filesystem::path& path, const std::string& what) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0)
    throw FormatError(fmt::format("{}: cannot open {}: {}", path.string(), what, std::strerror(errno)));
  if (!S_ISREG(st.st_mode))
    throw FormatError(fmt::format("{}: {} is a {}, not a regular file", path.string(), what, kind_of(st.st_mode)));
}

int open_regular_file(const std::filesystem::path& path, const std::string& what, std::uint64_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw FormatError(fmt::format("{}: cannot open {}: {}", path.string(), what, std::strerror(errno)));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw FormatError(fmt::format("{}: cannot examine {}: {}", path.string(), what, std::strerror(e)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw FormatError(fmt::format("{}: {} is a {}, not a regular file", path.string(), what, kind_of(st.st_mode)));
  }
  *size = static_cast<std::uint64_t>(st.st_size);
  return fd;
}

std::string read_whole_file(const std::filesystem::path& path, const std::string& what, std::uint64_t max_bytes) {
  std::uint64_t size = 0;
  const int fd = open_regular_file(path, what, &size);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (size > max_bytes)
    throw FormatError(fmt::format("{}: {} is {} bytes, more than the {} bytes accepted", path.string(), what, size,
                                  max_bytes));
  std::string text(static_cast<std::size_t>(size), '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw FormatError(fmt::format("{}: reading {} failed: {}", path.string(), what, std::strerror(errno)));
    if (n == 0) break;  // the file shrank while we read it
    got += static_cast<std::size_t>(n);
  }
  text.resize(got);
  return text;
}

}  // namespace tessera
