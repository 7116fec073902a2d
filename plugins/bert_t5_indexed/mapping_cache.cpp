#include "mapping_cache.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include "npy_file.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"

namespace tessera::bert_t5_indexed {

std::string mapping_cache_path(const MappingCacheName& n) {
  namespace fs = std::filesystem;
  std::string ssp = fmt::format("{:.2f}", n.short_seq_prob);
  auto ratio = [](double p) { return p > 0 ? std::round(1.0 / p) : 0.0; };
  if (ratio(std::stod(ssp)) != ratio(n.short_seq_prob)) ssp = fmt::format("{}", n.short_seq_prob);
  const std::string base = n.cache_dir.empty()
                               ? n.data_prefix
                               : (fs::path(n.cache_dir) / fs::path(n.data_prefix).filename()).string();
  return fmt::format("{}_{}_indexmap_{}mns_{}msl_{}ssp_{}s_{}minsent_{}-{}docs.npy", base, n.split, n.max_num_samples,
                     n.max_seq_length, ssp, n.seed, n.min_num_sent, n.doc_begin, n.doc_end);
}

namespace {

// An exclusive flock on a lock file, released when destroyed; not held when the file cannot be made.
class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd_ < 0) {
      error_ = std::strerror(errno);
      return;
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      log_info("waiting for another process to build {} (lock {})", path.substr(0, path.size() - 5), path);
      int rc;
      while ((rc = ::flock(fd_, LOCK_EX)) != 0 && errno == EINTR) {}
      if (rc != 0) {
        error_ = std::strerror(errno);
        ::close(fd_);
        fd_ = -1;
      }
    }
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  bool held() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }

 private:
  int fd_ = -1;
  std::string error_;
};

// Maps path and parses it as a mapping; FormatError for a file that is not one.
SamplesMapping map_file(const std::string& path) {
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
  std::shared_ptr<const void> owner(p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
  const auto* bytes = static_cast<const unsigned char*>(p);
  const NpyArray a = parse_npy(bytes, size, path);
  if (a.cols != 3) throw FormatError(fmt::format("{}: not a samples mapping: {} columns, not 3", path, a.cols));
  return SamplesMapping(std::move(owner), bytes + a.data_offset, a.width, a.rows);
}

std::optional<std::filesystem::file_time_type> mtime(const std::string& path) {
  std::error_code ec;
  const auto t = std::filesystem::last_write_time(path, ec);
  if (ec) return std::nullopt;
  return t;
}

}  // namespace

CachedMapping load_or_build_mapping(const std::string& path, const std::string& source_idx, const MappingCheck& check,
                                    const std::function<SamplesMapping()>& build) {
  bool warned = false;
  auto try_load = [&]() -> std::optional<SamplesMapping> {
    const auto cache_time = mtime(path);
    if (!cache_time) return std::nullopt;
    std::string problem;
    const auto data_time = mtime(source_idx);
    if (data_time && *cache_time < *data_time) {
      problem = fmt::format("it is older than {}", source_idx);
    } else {
      try {
        SamplesMapping m = map_file(path);
        problem = check(m);
        if (problem.empty()) return m;
      } catch (const FormatError& e) {
        problem = e.what();
      }
    }
    if (!warned) log_warn("samples mapping {} is not usable ({}); rebuilding it", path, problem);
    warned = true;
    return std::nullopt;
  };

  if (auto m = try_load()) return {std::move(*m), true, false};
  const FileLock lock(path + ".lock");
  if (lock.held()) {
    if (auto m = try_load()) return {std::move(*m), true, false};  // another process built it meanwhile
  }
  CachedMapping out{build(), false, false};
  if (!lock.held()) {
    log_warn("cannot lock {}.lock ({}); the samples mapping is kept in memory only (set data.data_cache_path to a "
             "writable folder to cache it)", path, lock.error());
    return out;
  }
  static std::atomic<int> counter{0};
  const std::string tmp = fmt::format("{}.tmp.{}.{}", path, ::getpid(), counter++);
  try {
    write_npy(tmp, out.mapping.data(), out.mapping.width(), out.mapping.size(), 3);
    std::filesystem::rename(tmp, path);
    out.written = true;
  } catch (const std::exception& e) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    log_warn("cannot write the samples mapping {} ({}); it is kept in memory only", path, e.what());
  }
  return out;
}

}  // namespace tessera::bert_t5_indexed
