// A small real corpus for trainer tests: byte tokens (ids 0..255, EOD 256) of the C++ sources in
// core/src/nn, one document per file, written once per test program as "training_corpus".
#pragma once
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tessera/data/indexed_dataset.hpp"

inline std::string training_corpus() {
  static const std::string prefix = [] {
    const std::string p = "training_corpus";
    tessera::IndexedDatasetWriter w(p, tessera::IndexDtype::u16);
    int docs = 0;
    // Sorted: directory order is up to the file system, and the samples should not be.
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(TESSERA_SOURCE_DIR) / "core/src/nn"))
      files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::ifstream in(f);
      std::stringstream ss;
      ss << in.rdbuf();
      std::vector<std::int32_t> ids;
      for (unsigned char c : ss.str()) ids.push_back(c);
      ids.push_back(256);
      w.add_document(ids);
      ++docs;
    }
    w.finalize();
    REQUIRE(docs >= 5);
    return p;
  }();
  return prefix;
}
