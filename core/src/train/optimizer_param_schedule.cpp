#include "tessera/train/optimizer_param_schedule.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"

namespace tessera {

double LrSchedule::at(std::int64_t samples) const {
  const double n = static_cast<double>(samples);
  if (warmup_samples > 0 && n <= warmup_samples) return init_lr + (lr - init_lr) * n / warmup_samples;
  if (style == "constant") return lr;
  if (samples > decay_samples) return min_lr;  // before inverse-square-root's formula, as Megatron-LM
  if (style == "inverse-square-root")
    return std::max(min_lr, lr * std::sqrt(std::max(warmup_samples, 1.0)) / std::sqrt(std::max(n, 1.0)));
  double coeff = 1.0;
  if (style == "WSD") {
    const double anneal_start = static_cast<double>(decay_samples - wsd_decay_samples);
    if (n > anneal_start) {
      const double r = (n - anneal_start) / static_cast<double>(wsd_decay_samples);
      coeff = wsd_style == "linear"        ? 1.0 - r
              : wsd_style == "cosine"      ? 0.5 * (std::cos(M_PI * r) + 1.0)
              : wsd_style == "minus_sqrt"  ? 1.0 - std::sqrt(r)
                                           : 2.0 * std::pow(0.5, r) - 1.0;  // exponential
    }
  } else {
    const double span = static_cast<double>(decay_samples) - warmup_samples;
    const double ratio = span > 0 ? (n - warmup_samples) / span : 1.0;
    coeff = style == "linear" ? 1.0 - ratio : 0.5 * (std::cos(M_PI * ratio) + 1.0);
  }
  return min_lr + coeff * (lr - min_lr);
}

double WeightDecaySchedule::at(std::int64_t samples) const {
  if (samples > incr_samples || style == "constant") return end;
  const double ratio = static_cast<double>(samples) / static_cast<double>(incr_samples);
  const double coeff = style == "linear" ? ratio : 0.5 * (std::cos(M_PI * (1.0 - ratio)) + 1.0);
  return start + coeff * (end - start);
}

namespace {

// Samples as iterations for messages: whole where they are.
std::string iterations(double samples, std::int64_t per_iteration) {
  return fmt::format("{:g}", samples / static_cast<double>(per_iteration));
}

std::int64_t samples_of(std::int64_t iters, std::int64_t batch, const ConfigSection& s, const char* key) {
  std::int64_t out = 0;
  if (__builtin_mul_overflow(iters, batch, &out))
    throw ConfigError(fmt::format("optimizer.{} = {} ({}) times the global batch {} overflows a 64-bit sample count",
                                  key, iters, s.origin(key), batch));
  return out;
}

void warn_unused(const ConfigSection& s, const char* key, const std::string& why) {
  if (s.has(key)) log_warn("optimizer.{} ({}) has no effect: {}", key, s.origin(key), why);
}

}  // namespace

std::string OptimizerParamSchedule::describe() const {
  // A run by samples (whose batch may ramp up) in samples, else in iterations.
  const auto length = [&](double samples) {
    return counts_samples ? fmt::format("{:g} samples", samples)
                          : fmt::format("{} iterations", iterations(samples, samples_per_iteration));
  };
  const auto point = [&](double samples) {
    return counts_samples ? fmt::format("sample {:g}", samples)
                          : fmt::format("iteration {}", iterations(samples, samples_per_iteration));
  };
  std::string out = fmt::format("lr {:g}", lr.lr);
  if (lr.warmup_samples > 0) out += fmt::format(", linear warmup from {:g} over {}", lr.init_lr, length(lr.warmup_samples));
  if (lr.style == "constant")
    out += ", then constant";
  else if (lr.style == "WSD")
    out += fmt::format(", then constant until {}, then annealed ({}) to min_lr {:g} at {}",
                       point(static_cast<double>(lr.decay_samples - lr.wsd_decay_samples)), lr.wsd_style, lr.min_lr,
                       point(static_cast<double>(lr.decay_samples)));
  else
    out += fmt::format(", then {} decay to min_lr {:g} at {}", lr.style, lr.min_lr,
                       point(static_cast<double>(lr.decay_samples)));
  if (decoupled())
    out += fmt::format("; the embedding and output layer at decoupled_lr {:g} (min {:g})", decoupled_lr,
                       decoupled_min_lr);
  if (weight_decay.style == "constant") return out + fmt::format("; weight decay {:g}", weight_decay.end);
  return out + fmt::format("; weight decay {} from {:g} to {:g} over {}", weight_decay.style, weight_decay.start,
                           weight_decay.end, length(static_cast<double>(weight_decay.incr_samples)));
}

OptimizerParamSchedule read_optimizer_param_schedule(const Config& config, const RunLength& run) {
  const ConfigSection s = config.section("optimizer");
  const std::int64_t batch = run.global_batch_size;
  const bool by_samples = run.train_samples > 0;
  OptimizerParamSchedule out;
  out.samples_per_iteration = batch;
  out.counts_samples = by_samples;
  LrSchedule& lr = out.lr;
  lr.lr = s.get_float("lr", 1e-4, 0.0, 10.0);
  lr.min_lr = s.get_float("min_lr", 0.0, 0.0, 10.0);
  if (lr.min_lr > lr.lr)
    throw ConfigError(fmt::format("optimizer.min_lr = {} ({}) is above optimizer.lr = {}: the schedule decays from lr "
                                  "down to min_lr",
                                  lr.min_lr, s.origin("min_lr"), lr.lr));
  // Megatron-Core's decoupled rate for the embedding and output layer; its floor defaults to min_lr.
  if (s.has("decoupled_lr")) {
    out.decoupled_lr = s.get_float("decoupled_lr", 0.0, 0.0, 10.0);
    out.decoupled_min_lr = s.get_float("decoupled_min_lr", lr.min_lr, 0.0, 10.0);
    if (out.decoupled_min_lr > out.decoupled_lr)
      throw ConfigError(fmt::format("optimizer.decoupled_min_lr = {} ({}) is above optimizer.decoupled_lr = {} ({}): "
                                    "the embedding's and output layer's rate decays from decoupled_lr down to "
                                    "decoupled_min_lr",
                                    out.decoupled_min_lr,
                                    s.has("decoupled_min_lr") ? s.origin("decoupled_min_lr")
                                                              : "its default, optimizer.min_lr",
                                    out.decoupled_lr, s.origin("decoupled_lr")));
  } else if (s.has("decoupled_min_lr")) {
    throw ConfigError(fmt::format("optimizer.decoupled_min_lr ({}) is the floor of optimizer.decoupled_lr, which is "
                                  "not set",
                                  s.origin("decoupled_min_lr")));
  }
  lr.init_lr = s.get_float("lr_warmup_init", 0.0, 0.0, 10.0);
  if (lr.init_lr > lr.lr)
    throw ConfigError(fmt::format("optimizer.lr_warmup_init = {} ({}) is above optimizer.lr = {}: the warmup rises "
                                  "from lr_warmup_init to lr",
                                  lr.init_lr, s.origin("lr_warmup_init"), lr.lr));
  lr.style = s.get_choice("lr_decay_style", "cosine", {"constant", "linear", "cosine", "inverse-square-root", "WSD"});

  // Lengths come in the run's unit, as Megatron-LM's validate_args has them: lr_*_iters when the run
  // is train_iters long, lr_*_samples when it is train_samples long. A warmup or decay in the other
  // unit is an error (a warmup of 0 aside), as there; WSD's in the other unit is ignored, as there.
  const std::string unit = by_samples ? "_samples" : "_iters";
  for (const char* base : {"lr_warmup", "lr_decay"}) {
    const std::string other = std::string(base) + (by_samples ? "_iters" : "_samples");
    if (s.has(other) && !(std::string(base) == "lr_warmup" && s.get_int(other, 0, 0, INT64_MAX / 2) == 0))
      throw ConfigError(fmt::format("optimizer.{} ({}) is for a run {}; this one is training.{} long: set "
                                    "optimizer.{}{} instead (Megatron-LM does not mix the two either)",
                                    other, s.origin(other),
                                    by_samples ? "by iterations (training.train_iters)"
                                               : "by samples (training.train_samples)",
                                    by_samples ? "train_samples" : "train_iters", base, unit));
  }
  warn_unused(s, by_samples ? "lr_wsd_decay_iters" : "lr_wsd_decay_samples",
              fmt::format("this run is training.{} long (use lr_wsd_decay{})",
                          by_samples ? "train_samples" : "train_iters", unit));
  // A length in the run's unit, as samples.
  const auto as_samples = [&](std::int64_t v, const std::string& key) {
    return by_samples ? v : samples_of(v, batch, s, key.c_str());
  };
  const std::int64_t run_units = by_samples ? run.train_samples : run.train_iters;
  const bool by_fraction = s.has("lr_warmup_fraction");
  const std::int64_t warmup = s.get_int("lr_warmup" + unit, 0, 0, INT64_MAX / 2);
  if (by_fraction && warmup != 0)
    throw ConfigError(fmt::format("optimizer.lr_warmup{} = {} ({}) and optimizer.lr_warmup_fraction ({}) are both "
                                  "set: the warmup is one or the other (as Megatron-LM's --lr-warmup{} and "
                                  "--lr-warmup-fraction)",
                                  unit, warmup, s.origin("lr_warmup" + unit), s.origin("lr_warmup_fraction"),
                                  by_samples ? "-samples" : "-iters"));
  const std::int64_t decay = s.get_int("lr_decay" + unit, std::max(run_units, warmup), 1, INT64_MAX / 2);
  if (decay < warmup)
    throw ConfigError(fmt::format("optimizer.lr_decay{0} ({1}) must be at least optimizer.lr_warmup{0} ({2})", unit,
                                  decay, warmup));
  lr.decay_samples = as_samples(decay, "lr_decay" + unit);
  // Megatron-LM: lr_warmup_steps = lr_warmup_fraction × lr_decay_steps, in samples.
  lr.warmup_samples = by_fraction ? s.get_float("lr_warmup_fraction", 0.0, 0.0, 1.0) * static_cast<double>(lr.decay_samples)
                                  : static_cast<double>(as_samples(warmup, "lr_warmup" + unit));
  // Megatron-LM asserts warmup < decay. A short trial run of a config with a long warmup is worth
  // allowing here (the decay then ends where the warmup does, and the rate drops to min_lr), but
  // not silently.
  if (lr.style != "constant" && lr.warmup_samples >= static_cast<double>(lr.decay_samples))
    log_warn("optimizer: the warmup ({} iterations) is not shorter than the decay (lr_decay{} ends at iteration {}): "
             "the rate rises to lr and then drops to min_lr at once (Megatron-LM refuses this)",
             iterations(lr.warmup_samples, batch), unit, iterations(static_cast<double>(lr.decay_samples), batch));

  lr.wsd_style = s.get_choice("lr_wsd_decay_style", "exponential", {"exponential", "linear", "cosine", "minus_sqrt"});
  const std::string wsd_key = "lr_wsd_decay" + unit;
  if (lr.style == "WSD") {
    if (!s.has(wsd_key))
      throw ConfigError(fmt::format("optimizer.lr_decay_style = \"WSD\" ({}) needs optimizer.{}: how many of the last "
                                    "{} before lr_decay{} ({}) anneal the rate to min_lr",
                                    s.origin("lr_decay_style"), wsd_key, by_samples ? "samples" : "iterations", unit,
                                    decay));
    // 0: no anneal, the rate stays at lr to the end of the decay, then min_lr (Megatron allows it).
    lr.wsd_decay_samples = as_samples(s.get_int(wsd_key, 1, 0, INT64_MAX / 2), wsd_key);
    if (static_cast<double>(lr.decay_samples - lr.wsd_decay_samples) < lr.warmup_samples)
      log_warn("optimizer.{} ({}): the anneal starts before the warmup ends ({} iterations), so the rate falls as soon "
               "as the warmup is over",
               wsd_key, s.origin(wsd_key), iterations(lr.warmup_samples, batch));
  } else {
    for (const std::string& key : {wsd_key, std::string("lr_wsd_decay_style")})
      warn_unused(s, key.c_str(), fmt::format("it shapes the anneal of lr_decay_style = \"WSD\", not \"{}\"", lr.style));
  }

  WeightDecaySchedule& wd = out.weight_decay;
  wd.style = s.get_choice("weight_decay_incr_style", "constant", {"constant", "linear", "cosine"});
  wd.incr_samples = by_samples ? run.train_samples
                               : samples_of(std::max<std::int64_t>(run.train_iters, 1), batch, s, "weight_decay_incr_style");
  if (wd.style == "constant") {
    for (const char* key : {"start_weight_decay", "end_weight_decay"})
      if (s.has(key))
        throw ConfigError(fmt::format("optimizer.{} ({}) needs optimizer.weight_decay_incr_style = \"linear\" or "
                                      "\"cosine\"; a constant weight decay is optimizer.weight_decay (as Megatron-LM)",
                                      key, s.origin(key)));
    wd.start = wd.end = s.get_float("weight_decay", 0.01, 0.0, 10.0);
  } else {
    for (const char* key : {"start_weight_decay", "end_weight_decay"})
      if (!s.has(key))
        throw ConfigError(fmt::format("optimizer.weight_decay_incr_style = \"{}\" ({}) needs optimizer.{}: the weight "
                                      "decay goes from start_weight_decay to end_weight_decay over the run",
                                      wd.style, s.origin("weight_decay_incr_style"), key));
    wd.start = s.get_float("start_weight_decay", 0.0, 0.0, 10.0);
    wd.end = s.get_float("end_weight_decay", 0.0, 0.0, 10.0);
    if (wd.end < wd.start)  // Megatron-LM asserts it: the schedule increments
      throw ConfigError(fmt::format("optimizer.end_weight_decay = {} ({}) is below optimizer.start_weight_decay = {}: "
                                    "the weight decay rises from start to end",
                                    wd.end, s.origin("end_weight_decay"), wd.start));
    warn_unused(s, "weight_decay", fmt::format("weight_decay_incr_style = \"{}\" takes start_weight_decay and "
                                               "end_weight_decay instead", wd.style));
  }
  return out;
}

ScheduleOnResume read_schedule_on_resume(const Config& config) {
  const ConfigSection s = config.section("optimizer");
  const bool use_config = s.get_bool("override_opt_param_scheduler", false);
  const bool use_checkpoint = s.get_bool("use_checkpoint_opt_param_scheduler", false);
  if (use_config && use_checkpoint)
    throw ConfigError(fmt::format("optimizer.override_opt_param_scheduler ({}) and "
                                  "optimizer.use_checkpoint_opt_param_scheduler ({}) are both true: a resumed run takes "
                                  "its schedule from this config or from the checkpoint, not both",
                                  s.origin("override_opt_param_scheduler"),
                                  s.origin("use_checkpoint_opt_param_scheduler")));
  return use_config       ? ScheduleOnResume::use_config
         : use_checkpoint ? ScheduleOnResume::use_checkpoint
                          : ScheduleOnResume::must_match;
}

std::vector<std::string> schedule_differences(const OptimizerParamSchedule& a, const OptimizerParamSchedule& b) {
  std::vector<std::string> out;
  const auto value = [&](const char* name, const auto& x, const auto& y) {
    if (x != y) out.push_back(fmt::format("{}: {} in the checkpoint, {} here", name, x, y));
  };
  const auto length = [&](const char* name, double x, double y) {
    if (x != y)
      out.push_back(fmt::format("{}: {:g} samples ({} iterations) in the checkpoint, {:g} samples ({} iterations) here",
                                name, x, iterations(x, a.samples_per_iteration), y,
                                iterations(y, b.samples_per_iteration)));
  };
  const LrSchedule &x = a.lr, &y = b.lr;
  value("lr", x.lr, y.lr);
  value("lr_decay_style", x.style, y.style);
  length("lr warmup", x.warmup_samples, y.warmup_samples);
  if (x.warmup_samples > 0 || y.warmup_samples > 0) value("lr_warmup_init", x.init_lr, y.init_lr);
  if (x.style != "constant" || y.style != "constant") {
    value("min_lr", x.min_lr, y.min_lr);
    length("lr decay", static_cast<double>(x.decay_samples), static_cast<double>(y.decay_samples));
  }
  value("decoupled_lr", a.decoupled() ? fmt::format("{}", a.decoupled_lr) : std::string("none"),
        b.decoupled() ? fmt::format("{}", b.decoupled_lr) : std::string("none"));
  if (a.decoupled() && b.decoupled() && (x.style != "constant" || y.style != "constant"))
    value("decoupled_min_lr", a.decoupled_min_lr, b.decoupled_min_lr);
  if (x.style == "WSD" && y.style == "WSD") {
    length("WSD anneal", static_cast<double>(x.wsd_decay_samples), static_cast<double>(y.wsd_decay_samples));
    value("lr_wsd_decay_style", x.wsd_style, y.wsd_style);
  }
  const WeightDecaySchedule &v = a.weight_decay, &w = b.weight_decay;
  value("weight_decay_incr_style", v.style, w.style);
  if (v.style == "constant" && w.style == "constant") {
    value("weight_decay", v.end, w.end);
  } else {
    value("start_weight_decay", v.start, w.start);
    value("end_weight_decay", v.end, w.end);
    length("weight-decay increment", static_cast<double>(v.incr_samples),
           static_cast<double>(w.incr_samples));
  }
  return out;
}

}  // namespace tessera
