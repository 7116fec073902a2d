#include "tessera/tools/staged_folder.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

namespace fs = std::filesystem;

namespace {
void require_free(const fs::path& out, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(out, ec))) return;
  if (!fs::is_directory(out, ec))
    throw ConfigError(fmt::format("{} {} exists and is not a folder: give a new folder's name", what, out.string()));
  if (!fs::is_empty(out, ec))
    throw ConfigError(fmt::format("{} {} exists and is not empty: give a new or empty folder (nothing there is "
                                  "overwritten)",
                                  what, out.string()));
}
}  // namespace

StagedFolder::StagedFolder(fs::path out, const std::string& what) : out_(std::move(out)), what_(what) {
  while (!out_.empty() && out_.filename().empty()) out_ = out_.parent_path();  // "OUT/" → "OUT"
  if (out_.empty()) throw ConfigError(fmt::format("{} is empty: give a folder", what));
  require_free(out_, what_);
  const fs::path parent = out_.has_parent_path() ? out_.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(parent, ec))
    throw ConfigError(fmt::format("{} {}: its parent folder {} does not exist", what_, out_.string(), parent.string()));
  tmp_ = parent / fmt::format(".{}.tmp-{}", out_.filename().string(), static_cast<long>(::getpid()));
  fs::remove_all(tmp_, ec);
  if (!fs::create_directory(tmp_, ec) || ec)
    throw Error(fmt::format("cannot create the temporary folder {} for {} {}: {}", tmp_.string(), what_,
                            out_.string(), ec ? ec.message() : "it exists"));
}

StagedFolder::~StagedFolder() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

void StagedFolder::commit() {
  require_free(out_, what_);  // checked again: something may have appeared meanwhile
  std::error_code ec;
  if (fs::exists(out_, ec)) fs::remove(out_);  // empty (require_free)
  fs::rename(tmp_, out_);
  committed_ = true;
}

}  // namespace tessera
