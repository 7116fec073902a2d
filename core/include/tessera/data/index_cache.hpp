// Dataset indices cached as .npy files (npy_file.hpp), as Megatron-LM caches them beside the data,
// but without Megatron's rank-0 build and barrier that times out on a large corpus. One index may
// span several files (GPT's doc_idx, sample_idx and shuffle_idx), read or written together:
//
//   1. When every file maps and the caller's load accepts them, they are used (no lock taken), and
//      one line is logged.
//   2. Otherwise the process takes an exclusive lock on "<first file>.lock" (flock, blocking, no
//      timeout), looks again (another process may have just written them), and else builds the
//      index, writes each file to a temporary file and renames it into place: readers never see a
//      partial file, and one process builds while the others wait for it. Every rank builds the
//      same index (the builds are deterministic), so a rank that cannot lock just builds its own.
//   3. Files that do not parse, fail the caller's check, or are older than the source (the data's
//      .idx) are rebuilt with a warning naming them. A folder that cannot be written (or made)
//      means a warning and an index kept in memory only: never an error.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tessera/data/npy_file.hpp"

namespace tessera {

struct IndexCacheFiles {
  std::string what;                // e.g. "GPT indices of the train split of /data/c": for log lines
  std::vector<std::string> paths;  // the files of the index
  std::string source;              // a file the cache must not predate ("" = none)
};

// One array to write: numel(shape) elements of dtype at data.
struct NpyArrayRef {
  NpyDtype dtype = NpyDtype::i8;
  std::vector<std::int64_t> shape;
  const void* data = nullptr;
};

// Takes the mapped files (in paths' order): returns "" once it has what it needs, else what is wrong
// with them (then the index is rebuilt).
using IndexCacheLoad = std::function<std::string(std::vector<MappedNpy>& files)>;
// Builds the index (the caller keeps it) and returns the arrays to write, in paths' order; they must
// stay valid until load_or_build_index returns.
using IndexCacheBuild = std::function<std::vector<NpyArrayRef>()>;

struct IndexCacheResult {
  bool from_cache = false;  // read from the files (not built by this call)
  bool written = false;     // built and written by this call
};

IndexCacheResult load_or_build_index(const IndexCacheFiles& files, const IndexCacheLoad& load,
                                     const IndexCacheBuild& build);

}  // namespace tessera
