#include "tessera/data/index_cache_name.hpp"

#include <filesystem>

#include <fmt/format.h>

namespace tessera {

std::string index_cache_stem(const std::string& data_prefix, const std::string& cache_dir) {
  namespace fs = std::filesystem;
  if (cache_dir.empty()) return data_prefix;
  // One cache folder can serve datasets of the same file name in different folders: the dataset's
  // absolute path, hashed into the name, keeps them from reading each other's indices.
  std::error_code ec;
  fs::path where = fs::weakly_canonical(fs::absolute(data_prefix, ec), ec);
  if (ec) where = fs::path(data_prefix);
  return (fs::path(cache_dir) /
          fmt::format("{}-{}", fs::path(data_prefix).filename().string(), stable_hash_hex(where.string()).substr(0, 8)))
      .string();
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
