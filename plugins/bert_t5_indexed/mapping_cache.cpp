#include "mapping_cache.hpp"

#include <cmath>

#include <fmt/format.h>

#include "tessera/data/index_cache.hpp"
#include "tessera/data/index_cache_name.hpp"
#include "tessera/data/npy_file.hpp"

namespace tessera::bert_t5_indexed {

std::string mapping_cache_path(const MappingCacheName& n) {
  std::string ssp = fmt::format("{:.2f}", n.short_seq_prob);
  auto ratio = [](double p) { return p > 0 ? std::round(1.0 / p) : 0.0; };
  if (ratio(std::stod(ssp)) != ratio(n.short_seq_prob)) ssp = fmt::format("{}", n.short_seq_prob);
  return fmt::format("{}_{}_indexmap_{}mns_{}msl_{}ssp_{}s_{}minsent_{}-{}docs.npy",
                     index_cache_stem(n.data_prefix, n.cache_dir), n.split, n.max_num_samples, n.max_seq_length, ssp,
                     n.seed, n.min_num_sent, n.doc_begin, n.doc_end);
}

CachedMapping load_or_build_mapping(const std::string& path, const std::string& source_idx, const MappingCheck& check,
                                    const std::function<SamplesMapping()>& build) {
  CachedMapping out;
  const IndexCacheFiles files{"samples mapping", {path}, source_idx};
  auto load = [&](std::vector<MappedNpy>& f) -> std::string {
    const MappedNpy& m = f[0];
    if (m.dtype() != NpyDtype::u4 && m.dtype() != NpyDtype::u8)
      return fmt::format("element type {}, not Megatron's uint32 or uint64", npy_descr(m.dtype()));
    if (m.shape().size() != 2 || m.shape()[1] != 3) return "not a samples mapping: not an [n, 3] array";
    SamplesMapping mapping(m.owner(), m.data(), npy_dtype_size(m.dtype()), m.shape()[0]);
    std::string problem = check(mapping);
    if (problem.empty()) out.mapping = std::move(mapping);
    return problem;
  };
  auto make = [&]() -> std::vector<NpyArrayRef> {
    out.mapping = build();
    return {{out.mapping.width() == 4 ? NpyDtype::u4 : NpyDtype::u8, {out.mapping.size(), 3}, out.mapping.data()}};
  };
  const IndexCacheResult r = load_or_build_index(files, load, make);
  out.from_cache = r.from_cache;
  out.written = r.written;
  return out;
}

}  // namespace tessera::bert_t5_indexed
