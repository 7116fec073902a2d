// A one-line progress bar for long jobs (tessera preprocess): percent of input bytes, documents/s,
// tokens/s and ETA, redrawn in place on a terminal and printed as a plain line every few seconds
// otherwise (logs stay readable). Hand-written on fmt because no Debian package offers a C++
// progress-bar library (indicators, tqdm-cpp, ... are not packaged) and this needs ~80 lines.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace tessera {

class ProgressBar {
 public:
  // total: units of work (bytes); 0 when unknown (no percentage or ETA then).
  ProgressBar(std::string label, std::int64_t total, bool enabled = true, std::FILE* out = stderr);
  // Redraws at most every 100 ms (terminal) or 5 s (pipe/file).
  void update(std::int64_t done, std::int64_t documents, std::int64_t tokens);
  // Draws the final state and ends the line.
  void finish(std::int64_t done, std::int64_t documents, std::int64_t tokens);

 private:
  void draw(std::int64_t done, std::int64_t documents, std::int64_t tokens, bool final);

  std::string label_;
  std::int64_t total_;
  bool enabled_, tty_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_, last_;
  bool drawn_ = false;
};

// "12.3k", "4.56M": short human-readable counts for rates.
std::string human_count(double v);

}  // namespace tessera
