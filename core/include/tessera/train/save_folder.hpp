// The [checkpoint] save folder is checked and claimed before any training (docs/reliability.md): an
// unwritable folder is found at start, not after the last iteration; two runs cannot write into one
// folder; what a failed or killed save left behind is cleaned up.
#pragma once
#include <filesystem>
#include <string>

namespace tessera {

// Creates `folder` if needed, then writes, reads back and removes a probe file named after `rank`.
// Throws Error naming the folder, `origin` (where checkpoint.save was set) and the system's reason.
void probe_writable(const std::filesystem::path& folder, int rank, const std::string& origin);

// An exclusive lock on `folder`/.tessera-save.lock for this object's lifetime (flock: released by
// the kernel when the process ends, however it ends, so a killed run leaves no stale lock). Throws
// Error saying which process holds it when another run has the folder.
class SaveFolderLock {
 public:
  explicit SaveFolderLock(const std::filesystem::path& folder);
  ~SaveFolderLock();
  SaveFolderLock(const SaveFolderLock&) = delete;
  SaveFolderLock& operator=(const SaveFolderLock&) = delete;

 private:
  int fd_ = -1;
};

// Under the lock: removes unfinished saves (iter_XXXXXXX.tmp folders; latest_checkpointed_iteration.txt,
// model.safetensors and config.toml's .tmp files — nothing else in the folder) and puts back an
// iter_XXXXXXX.old whose replacement never arrived (a save killed between its two renames).
void clean_unfinished_saves(const std::filesystem::path& folder);

// What a finished run left in `folder`, as a phrase for an error ("checkpoints up to iteration 8 and
// final weights"), or "" when it holds none: latest_checkpointed_iteration.txt, iter_XXXXXXX
// folders, model.safetensors. A run that does not resume from `folder` must not save over them.
std::string previous_run_in(const std::filesystem::path& folder);

}  // namespace tessera
