// Naming cached dataset indices (index_cache.hpp): where they go, and a hash that is the same in
// every build and on every machine (std::hash is not), for names derived from long descriptions.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace tessera {

// The stem of a dataset's cache files: the data prefix itself when cache_dir is "" (beside the
// data, as Megatron-LM caches), else cache_dir/<prefix's file name>-<8 hex digits of a hash of its
// absolute path> ([data] data_cache_path; Megatron-LM hashes its description, path included, too).
std::string index_cache_stem(const std::string& data_prefix, const std::string& cache_dir);

// 64-bit FNV-1a of bytes: stable across builds, compilers and machines.
std::uint64_t fnv1a_64(std::string_view bytes);

// fnv1a_64 as 16 lowercase hex digits.
std::string stable_hash_hex(std::string_view bytes);

}  // namespace tessera
