#include "tessera/train/lr_schedule.hpp"

#include <algorithm>
#include <cmath>

namespace tessera {

double LrSchedule::at(std::int64_t iteration) const {
  if (warmup_iters > 0 && iteration <= warmup_iters)
    return lr * static_cast<double>(iteration) / static_cast<double>(warmup_iters);
  if (style == "constant") return lr;
  if (iteration > decay_iters) return min_lr;  // before inverse-square-root's formula, as Megatron-LM
  if (style == "inverse-square-root") {
    const double w = static_cast<double>(std::max<std::int64_t>(warmup_iters * samples_per_iteration, 1));
    const double n = static_cast<double>(std::max<std::int64_t>(iteration * samples_per_iteration, 1));
    return std::max(min_lr, lr * std::sqrt(w) / std::sqrt(n));
  }
  const double span = static_cast<double>(decay_iters - warmup_iters);
  const double ratio = span > 0 ? static_cast<double>(iteration - warmup_iters) / span : 1.0;
  const double coeff = style == "linear" ? 1.0 - ratio : 0.5 * (std::cos(M_PI * ratio) + 1.0);
  return min_lr + coeff * (lr - min_lr);
}

}  // namespace tessera
