// An output folder that appears complete or not at all: the files are written into a temporary
// sibling (".<name>.tmp-<pid>") and renamed into place by commit(); a StagedFolder destroyed without
// commit (an error on the way) removes its temporary folder. The output must not exist yet or be an
// empty folder: anything in it is a ConfigError naming it, so nothing a user has is overwritten.
#pragma once
#include <filesystem>

namespace tessera {

class StagedFolder {
 public:
  // `what` names the folder in messages ("OUT").
  StagedFolder(std::filesystem::path out, const std::string& what);
  ~StagedFolder();
  StagedFolder(const StagedFolder&) = delete;
  StagedFolder& operator=(const StagedFolder&) = delete;
  // Where to write until commit().
  const std::filesystem::path& path() const { return tmp_; }
  const std::filesystem::path& destination() const { return out_; }
  // Renames the temporary folder to the destination (an empty folder there is replaced).
  void commit();

 private:
  std::filesystem::path out_, tmp_;
  std::string what_;
  bool committed_ = false;
};

}  // namespace tessera
