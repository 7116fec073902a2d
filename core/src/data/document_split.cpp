#include "tessera/data/document_split.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/quote.hpp"

namespace tessera {

std::array<std::int64_t, 4> parse_document_split(const std::string& spec, std::int64_t num_documents) {
  auto bad = [&](const std::string& why) {
    return ConfigError(fmt::format("data.split = {}: {} (expected up to three finite, non-negative weights with a "
                                   "positive sum, such as \"969,30,1\" or \"98/2/0\")", quote_untrusted(spec), why));
  };
  if (num_documents < 0) throw bad(fmt::format("negative number of documents {}", num_documents));
  // w/sum · N is computed in double: N must be exact there (an .idx this large cannot exist anyway).
  if (num_documents > (std::int64_t{1} << 53)) throw bad(fmt::format("{} documents are too many to split", num_documents));
  const char sep = spec.find(',') != std::string::npos ? ',' : '/';
  std::vector<double> w;
  std::size_t pos = 0;
  while (true) {
    const std::size_t end = spec.find(sep, pos);
    const std::string part = spec.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    const char* begin = part.c_str();
    char* stop = nullptr;
    errno = 0;
    const double v = std::strtod(begin, &stop);
    while (stop && *stop == ' ') ++stop;
    if (part.find_first_not_of(' ') == std::string::npos || stop == begin || *stop != '\0')
      throw bad(fmt::format("{} is not a number", quote_untrusted(part)));
    if (std::isnan(v)) throw bad(fmt::format("weight {} is not a number (NaN)", quote_untrusted(part)));
    if (!std::isfinite(v) || errno == ERANGE)
      throw bad(fmt::format("weight {} is out of range (weights must be finite and representable as a double)",
                            quote_untrusted(part)));
    if (v < 0) throw bad(fmt::format("weight {} is negative", quote_untrusted(part)));
    w.push_back(v);
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  if (w.size() > 3) throw bad(fmt::format("{} weights given", w.size()));
  w.resize(3, 0.0);
  const double sum = w[0] + w[1] + w[2];
  if (!std::isfinite(sum)) throw bad("the weights' sum overflows a double (scale them down)");
  if (!(sum > 0.0)) throw bad("the weights sum to zero");
  std::array<std::int64_t, 4> idx{0, 0, 0, 0};
  for (int i = 0; i < 3; ++i)
    idx[i + 1] = idx[i] + static_cast<std::int64_t>(std::nearbyint(w[i] / sum * static_cast<double>(num_documents)));
  const std::int64_t diff = idx[3] - num_documents;
  for (int i = 1; i < 4; ++i) idx[i] -= diff;
  for (int i = 0; i < 3; ++i)
    if (idx[i + 1] < idx[i])
      throw bad(fmt::format("rounding {} documents gives a negative range", num_documents));
  return idx;
}

}  // namespace tessera
