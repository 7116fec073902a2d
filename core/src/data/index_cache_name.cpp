#include "tessera/data/index_cache_name.hpp"

#include <filesystem>

#include <fmt/format.h>

namespace tessera {

std::string index_cache_stem(const std::string& data_prefix, const std::string& cache_dir) {
  namespace fs = std::filesystem;
  if (cache_dir.empty()) return data_prefix;
  return (fs::path(cache_dir) / fs::path(data_prefix).filename()).string();
}

std::uint64_t fnv1a_64(std::string_view bytes) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

std::string stable_hash_hex(std::string_view bytes) { return fmt::format("{:016x}", fnv1a_64(bytes)); }

}  // namespace tessera
