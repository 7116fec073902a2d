#include "tessera/tools/progress_bar.hpp"

#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

namespace tessera {

std::string human_count(double v) {
  if (v >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

ProgressBar::ProgressBar(std::string label, std::int64_t total, bool enabled, std::FILE* out)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(::isatty(::fileno(out)) != 0), out_(out),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

void ProgressBar::update(std::int64_t done, std::int64_t documents, std::int64_t tokens) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ < (tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(5000))) return;
  last_ = now;
  draw(done, documents, tokens, false);
}

void ProgressBar::finish(std::int64_t done, std::int64_t documents, std::int64_t tokens) {
  if (!enabled_) return;
  draw(done, documents, tokens, true);
}

void ProgressBar::draw(std::int64_t done, std::int64_t documents, std::int64_t tokens, bool final) {
  const double secs = std::max(1e-9, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  std::string line = label_;
  if (total_ > 0) {
    const double frac = std::clamp(static_cast<double>(done) / static_cast<double>(total_), 0.0, 1.0);
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    line += fmt::format(" [{}{}] {:5.1f}%", std::string(static_cast<std::size_t>(filled), '#'),
                        std::string(static_cast<std::size_t>(kWidth - filled), '.'), 100.0 * frac);
    if (!final && frac > 0) {
      const auto eta = static_cast<long>(secs / frac - secs);
      line += fmt::format(" ETA {:02}:{:02}:{:02}", eta / 3600, eta / 60 % 60, eta % 60);
    }
  }
  line += fmt::format(" | {} docs, {} docs/s | {} tokens, {} tokens/s | {:.1f} s", human_count(static_cast<double>(documents)),
                      human_count(static_cast<double>(documents) / secs), human_count(static_cast<double>(tokens)),
                      human_count(static_cast<double>(tokens) / secs), secs);
  if (tty_) {
    fmt::print(out_, "\r{}\x1b[K{}", line, final ? "\n" : "");
  } else {
    fmt::print(out_, "{}\n", line);
  }
  std::fflush(out_);
  drawn_ = true;
}

}  // namespace tessera
