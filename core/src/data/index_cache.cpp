#include "tessera/data/index_cache.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/logging.hpp"

namespace tessera {

namespace {

// An exclusive flock on a lock file, released when destroyed; not held when the file cannot be made.
class FileLock {
 public:
  FileLock(const std::string& path, const std::string& what) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd_ < 0) {
      error_ = std::strerror(errno);
      return;
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      log_info("{}: waiting for another process to build them (lock {})", what, path);
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

std::optional<std::filesystem::file_time_type> mtime(const std::string& path) {
  std::error_code ec;
  const auto t = std::filesystem::last_write_time(path, ec);
  if (ec) return std::nullopt;
  return t;
}

// The paths in one shell brace expansion ("/d/x_{doc,sample,shuffle}_idx.npy"): one readable log line.
std::string file_list(const std::vector<std::string>& paths) {
  if (paths.size() == 1) return paths[0];
  std::size_t shortest = paths[0].size();
  for (const auto& p : paths) shortest = std::min(shortest, p.size());
  std::size_t pre = 0, suf = 0;
  auto same_at = [&](auto index) {
    for (const auto& p : paths)
      if (p[index(p)] != paths[0][index(paths[0])]) return false;
    return true;
  };
  while (pre < shortest && same_at([&](const std::string&) { return pre; })) ++pre;
  while (suf < shortest - pre && same_at([&](const std::string& p) { return p.size() - 1 - suf; })) ++suf;
  std::string middle;
  for (const auto& p : paths) {
    if (!middle.empty()) middle.push_back(',');
    middle.append(p.begin() + static_cast<std::ptrdiff_t>(pre), p.end() - static_cast<std::ptrdiff_t>(suf));
  }
  const std::string& p0 = paths[0];
  return fmt::format("{}{{{}}}{}", std::string_view(p0).substr(0, pre), middle,
                     std::string_view(p0).substr(p0.size() - suf));
}

}  // namespace

IndexCacheResult load_or_build_index(const IndexCacheFiles& f, const IndexCacheLoad& load,
                                     const IndexCacheBuild& build) {
  if (f.paths.empty()) throw Error("load_or_build_index: no cache files");
  bool warned = false;
  // Returns whether the files were taken; warns (once) about files that exist but are not usable.
  auto try_load = [&]() -> bool {
    bool any = false, all = true;
    for (const auto& p : f.paths) {
      const bool here = mtime(p).has_value();
      any = any || here;
      all = all && here;
    }
    if (!any) return false;
    std::string problem;
    if (!all) {
      for (const auto& p : f.paths)
        if (!mtime(p)) problem = fmt::format("{} is missing", p);
    } else {
      const auto data_time = f.source.empty() ? std::nullopt : mtime(f.source);
      for (const auto& p : f.paths) {
        const auto t = mtime(p);
        if (data_time && t && *t < *data_time) problem = fmt::format("{} is older than {}", p, f.source);
      }
      if (problem.empty()) {
        try {
          std::vector<MappedNpy> files;
          for (const auto& p : f.paths) files.push_back(MappedNpy::open(p));
          problem = load(files);
          if (problem.empty()) return true;
        } catch (const FormatError& e) {
          problem = e.what();
        }
      }
    }
    if (!warned) log_warn("{}: the cached {} not usable ({}); rebuilding", f.what,
                          f.paths.size() == 1 ? fmt::format("file {} is", f.paths[0])
                                              : fmt::format("files {} are", file_list(f.paths)),
                          problem);
    warned = true;
    return false;
  };
  auto reused = [&] {
    log_info("{}: reusing the cached {}", f.what, file_list(f.paths));
    return IndexCacheResult{true, false};
  };

  if (try_load()) return reused();
  {
    std::error_code ec;  // [data] data_cache_path may not exist yet; a failure shows as an unwritable cache below
    std::filesystem::create_directories(std::filesystem::path(f.paths[0]).parent_path(), ec);
  }
  const FileLock lock(f.paths[0] + ".lock", f.what);
  if (lock.held() && try_load()) return reused();  // another process built them meanwhile
  const std::vector<NpyArrayRef> arrays = build();
  IndexCacheResult out;
  if (!lock.held()) {
    log_warn("{}: cannot lock {}.lock ({}); kept in memory only, not cached (set data.data_cache_path to a writable "
             "folder to cache them)", f.what, f.paths[0], lock.error());
    return out;
  }
  if (arrays.size() != f.paths.size())
    throw Error(fmt::format("load_or_build_index: {} arrays for {} files", arrays.size(), f.paths.size()));
  static std::atomic<int> counter{0};
  for (std::size_t k = 0; k < f.paths.size(); ++k) {
    const std::string& path = f.paths[k];
    const std::string tmp = fmt::format("{}.tmp.{}.{}", path, ::getpid(), counter++);
    try {
      write_npy(tmp, arrays[k].data, arrays[k].dtype, arrays[k].shape);
      std::filesystem::rename(tmp, path);
    } catch (const std::exception& e) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      log_warn("{}: cannot write {} ({}); kept in memory only, not cached", f.what, path, e.what());
      return out;
    }
  }
  out.written = true;
  log_info("{}: cached in {}", f.what, file_list(f.paths));
  return out;
}

}  // namespace tessera
