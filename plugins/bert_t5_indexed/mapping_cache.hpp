// The samples mapping cached beside the data, as Megatron-LM caches it (a .npy file named from the
// parameters), through core's index cache (tessera/data/index_cache.hpp: a valid file is mapped and
// used; else one process builds it under a lock and writes it atomically while the others wait; a
// file that does not parse, fails the caller's check, or is older than the dataset's .idx is rebuilt
// with a warning naming it; an unwritable folder means a warning and a mapping in memory only).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "samples_mapping.hpp"

namespace tessera::bert_t5_indexed {

struct MappingCacheName {
  std::string data_prefix;  // the dataset's <prefix> (of .bin/.idx)
  std::string cache_dir;    // "" = beside the data
  std::string split;        // "train", "valid", "test"
  std::int64_t max_num_samples = 0;
  std::int64_t max_seq_length = 0;  // the mapping's longest target (seq_length − 3 or − 2)
  double short_seq_prob = 0.1;
  std::uint64_t seed = 0;
  int min_num_sent = 2;
  std::int64_t doc_begin = 0, doc_end = 0;  // the split's documents: another split is another mapping
};

// Megatron's name, <prefix>_<split>_indexmap_<N>mns_<L>msl_<ssp:.2f>ssp_<seed>s, plus
// _<min_num_sent>minsent (Megatron leaves it out, so its BERT runs with and without the binary head
// share a file whose rows differ) and _<doc_begin>-<doc_end>docs (a changed `split` that grows a
// split's documents would otherwise reuse the old, smaller mapping), then .npy. short_seq_prob is written with more digits when two
// decimals would name another ratio round(1/ssp) (0.054 and 0.05 share "0.05" in Megatron's name).
std::string mapping_cache_path(const MappingCacheName& name);

// What a cached mapping must satisfy; returns "" when it does, else what is wrong.
using MappingCheck = std::function<std::string(const SamplesMapping&)>;

struct CachedMapping {
  SamplesMapping mapping;
  bool from_cache = false;  // read from the file (not built by this call)
  bool written = false;     // built and written by this call
};

// source_idx: the dataset's .idx, whose modification time a cache must not predate.
CachedMapping load_or_build_mapping(const std::string& path, const std::string& source_idx, const MappingCheck& check,
                                    const std::function<SamplesMapping()>& build);

}  // namespace tessera::bert_t5_indexed
