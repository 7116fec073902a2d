// Small helpers the data and tokenizer tests share: a temporary folder, whole-file bytes, and
// running a reference script (/usr/bin/python3, node) from an argument vector while capturing its stdout.
#pragma once
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "tessera/subprocess.hpp"

namespace tessera::test {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("tessera_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_text(const std::string& path) {
  auto b = read_bytes(path);
  return {b.begin(), b.end()};
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

// Runs argv[0] with the arguments argv[1..] as they are (no shell: nothing is interpreted) and returns
// its stdout, with its stderr too when merge_stderr. With status_out the exit code is stored there
// (-1 when a signal ended it); without it a failure throws with the output.
inline std::string run_command(const std::vector<std::string>& argv, int* status_out = nullptr,
                               bool merge_stderr = false) {
  const tessera::ProcessResult r = tessera::run_process(argv, merge_stderr);
  if (status_out) {
    *status_out = r.exit_code;
  } else if (!r.ok()) {
    std::string cmd;
    for (const std::string& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    throw std::runtime_error("command failed (" + r.describe() + "): " + cmd + "\n" + r.output);
  }
  return r.output;
}

}  // namespace tessera::test
