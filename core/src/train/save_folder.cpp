#include "tessera/train/save_folder.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/quote.hpp"
#include "tessera/train/checkpoint.hpp"

namespace tessera {

namespace fs = std::filesystem;

void probe_writable(const fs::path& folder, int rank, const std::string& origin) {
  const fs::path probe = folder / fmt::format(".tessera-write-probe-rank{}-pid{}", rank, ::getpid());
  const auto fail = [&](const std::string& why) {
    return Error(fmt::format("checkpoint.save = {} (in {}) cannot be written on rank {}: {}; found before training, so "
                             "no work is lost",
                             folder.string(), origin, rank, why));
  };
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw fail(fmt::format("cannot create the folder ({})", ec.message()));
  const std::string text = "tessera write probe\n";
  {
    std::ofstream out(probe, std::ios::binary | std::ios::trunc);
    if (!out) throw fail(fmt::format("cannot create a file there ({})", std::strerror(errno)));
    out << text;
    out.flush();
    if (!out) {
      fs::remove(probe, ec);
      throw fail("writing a file there failed (disk full?)");
    }
  }
  std::ifstream in(probe, std::ios::binary);
  const std::string back((std::istreambuf_iterator<char>(in)), {});
  fs::remove(probe, ec);
  if (back != text) throw fail("a file written there does not read back");
  if (ec) throw fail(fmt::format("cannot remove a file there ({})", ec.message()));
}

SaveFolderLock::SaveFolderLock(const fs::path& folder) {
  const fs::path path = folder / ".tessera-save.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(fmt::format("cannot create the lock file {}: {}", path.string(), std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder(200, '\0');
    const ssize_t n = ::pread(fd_, holder.data(), holder.size(), 0);
    holder.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw Error(fmt::format("checkpoint.save = {} is in use by another run ({}): two runs saving into one folder "
                              "would overwrite each other's checkpoints; give this run its own folder",
                              folder.string(), holder.empty() ? "its lock file is empty" : quote_untrusted(holder, 120)));
    throw Error(fmt::format("cannot lock {}: {}", path.string(), std::strerror(err)));
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string me = fmt::format("pid {} on {}", ::getpid(), host);
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t w = ::pwrite(fd_, me.data(), me.size(), 0);
  }
}

SaveFolderLock::~SaveFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock; the file stays (removing it would race a new run)
}

namespace {

// What Tessera's own saves write first and rename later (nothing else in the folder is touched):
// iter_XXXXXXX.tmp/ folders and <file>.tmp for the files written atomically into the save folder.
bool is_unfinished_save(const std::string& name) {
  if (name.starts_with("iter_") && name.ends_with(".tmp")) return true;
  for (const char* file : {"latest_checkpointed_iteration.txt.tmp", "model.safetensors.tmp", "config.toml.tmp"})
    if (name == file) return true;
  return false;
}

}  // namespace

std::string previous_run_in(const fs::path& folder) {
  std::error_code ec;
  std::int64_t last = -1;
  const bool tracker = fs::exists(folder / kLatestCheckpointFile, ec);
  for (const auto& e : fs::directory_iterator(folder, ec)) {
    const std::string name = e.path().filename().string();
    const bool checkpoint = name.size() == checkpoint_dir_name(0).size() && name.starts_with("iter_") &&
                            name.find_first_not_of("0123456789", 5) == std::string::npos;
    if (checkpoint && e.is_directory(ec)) last = std::max<std::int64_t>(last, std::stoll(name.substr(5)));
  }
  const bool final_weights = fs::exists(folder / "model.safetensors", ec);
  std::string what;
  if (last >= 0) what = fmt::format("checkpoints up to iteration {}", last);
  else if (tracker) what = "latest_checkpointed_iteration.txt";
  if (final_weights) what += what.empty() ? "final weights (model.safetensors)" : " and final weights (model.safetensors)";
  return what;
}

void clean_unfinished_saves(const fs::path& folder) {
  std::error_code ec;
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(folder, ec)) entries.push_back(e.path());
  for (const fs::path& p : entries) {
    const std::string name = p.filename().string();
    if (name.starts_with("iter_") && name.ends_with(".old")) {
      const fs::path final_dir = folder / name.substr(0, name.size() - 4);
      if (!fs::exists(final_dir)) {
        fs::rename(p, final_dir, ec);
        log_warn("checkpoint.save: put back {} from {}, left by a save that stopped between its two renames",
                 final_dir.string(), name);
      } else {
        fs::remove_all(p, ec);
      }
    } else if (is_unfinished_save(name)) {
      fs::remove_all(p, ec);
      log_warn("checkpoint.save: removed {}, left unfinished by a save that failed or was killed", p.string());
    }
  }
}

}  // namespace tessera
