#include "tessera/train/checkpoint.hpp"

#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/io/input_file.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/nn/moe.hpp"
#include "tessera/ops.hpp"
#include "tessera/quote.hpp"

namespace tessera {

void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.flush();
    if (!out) {
      out.close();
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw Error(fmt::format("writing {} failed (disk full?); {} is unchanged", tmp.string(), path.string()));
    }
  }
  std::filesystem::rename(tmp, path);
}

std::string read_text(const std::filesystem::path& path) {
  return read_whole_file(path, "checkpoint file", kMaxMetadataBytes);
}

std::string checkpoint_dir_name(std::int64_t iteration) { return fmt::format("iter_{:07d}", iteration); }

std::string checkpoint_model_file(int tp_rank, int pp_rank) {
  return fmt::format("model_tp{}_pp{}.safetensors", tp_rank, pp_rank);
}

std::string checkpoint_optimizer_file(int tp_rank, int pp_rank, int dp_rank) {
  return fmt::format("optimizer_tp{}_pp{}_dp{}.safetensors", tp_rank, pp_rank, dp_rank);
}

PluginPtr<OptimizerStateFormat> optimizer_state_format(const Config& config, const std::string& name) {
  for (const PluginInfo& info : available_plugins("optimizer_state"))
    if (info.name == name) return create_plugin<OptimizerStateFormat>("optimizer_state", name, config.section("optimizer"));
  return nullptr;
}

void restore_tensors(const std::map<std::string, Tensor>& saved, const NamedTensors& targets, const std::string& what,
                     const std::string& hint) {
  std::set<std::string> expected;
  for (const auto& [name, target] : targets) {
    expected.insert(name);
    auto it = saved.find(name);
    if (it == saved.end())
      throw FormatError(fmt::format("{}: no tensor '{}' in the checkpoint ({} tensors there, {} expected){}", what, name,
                                    saved.size(), targets.size(), hint));
    const Tensor& src = it->second;
    if (src.dtype() != target.dtype())
      throw FormatError(fmt::format("{}: tensor '{}' has dtype {} in the checkpoint, {} here", what, name,
                                    dtype_name(src.dtype()), dtype_name(target.dtype())));
    if (src.shape() != target.shape())
      throw FormatError(fmt::format("{}: tensor '{}' has shape {} in the checkpoint, {} here{}", what, name,
                                    shape_str(src.shape()), shape_str(target.shape()), hint));
  }
  for (const auto& [name, t] : saved)
    if (!expected.count(name) && name != "step")
      throw FormatError(fmt::format("{}: the checkpoint has a tensor '{}' that this run does not{}", what, name, hint));
  for (const auto& [name, target] : targets) {
    Tensor dst = target;
    ops::copy(saved.at(name), dst);
  }
}

void restore_model_file(std::map<std::string, Tensor> saved, const std::vector<Parameter*>& params, int ep,
                        const std::string& what, const std::string& hint) {
  NamedTensors targets;
  std::set<std::string> own;
  std::int64_t experts_here = 0;
  for (Parameter* p : params) {
    targets.emplace_back(p->name, p->value);
    own.insert(p->name);
    experts_here += p->expert_parallel ? 1 : 0;
  }
  if (ep > 1) {
    std::int64_t others = 0;
    for (auto it = saved.begin(); it != saved.end();) {
      const bool other_expert = !own.count(it->first) && is_expert_tensor(it->first);
      others += other_expert ? 1 : 0;
      it = other_expert ? saved.erase(it) : std::next(it);
    }
    if (others != experts_here * (ep - 1))
      throw FormatError(fmt::format("{}: holds {} tensors of experts this rank does not hold, expected {} (the other "
                                    "{} expert-parallel ranks' experts)",
                                    what, others, experts_here * (ep - 1), ep - 1));
  }
  restore_tensors(saved, targets, what, hint);
}

CheckpointFolder open_checkpoint(const std::filesystem::path& load, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dir = load;
  if (!fs::exists(load / "metadata.json", ec)) {  // a save folder: its latest checkpoint
    const fs::path latest = load / kLatestCheckpointFile;
    if (!fs::exists(latest, ec))
      throw FormatError(fmt::format("{}: neither {} nor metadata.json there (not a save folder or a checkpoint folder)",
                                    what, kLatestCheckpointFile));
    const std::string text = read_text(latest);
    std::size_t used = 0;
    std::int64_t it = -1;
    try {
      it = std::stoll(text, &used);
    } catch (const std::exception&) {
    }
    if (it < 1 || text.find_first_not_of(" \t\r\n", used) != std::string::npos)
      throw FormatError(fmt::format("{}: expected an iteration number, found {}", latest.string(), quote_untrusted(text)));
    dir = load / checkpoint_dir_name(it);
  }
  const fs::path meta_path = dir / "metadata.json";
  CheckpointMetadata meta = parse_checkpoint_metadata(read_text(meta_path), meta_path.string());
  // A checkpoint folder is named after its iteration; "latest" names one by that name too.
  const std::string folder = dir.filename().string();
  if (folder.rfind("iter_", 0) == 0 && folder != checkpoint_dir_name(meta.iteration))
    throw FormatError(fmt::format("{}: iteration {} does not match the folder name {} (expected {})", meta_path.string(),
                                  meta.iteration, folder, checkpoint_dir_name(meta.iteration)));
  return {dir, std::move(meta)};
}

Tensor step_tensor(std::int64_t step) { return Tensor::from<std::int64_t>({1}, {step}); }

std::int64_t read_step_tensor(const std::map<std::string, Tensor>& saved, const std::string& what) {
  auto it = saved.find("step");
  if (it == saved.end()) throw FormatError(fmt::format("{}: no tensor 'step' in the checkpoint", what));
  if (it->second.dtype() != DType::i64 || it->second.numel() != 1)
    throw FormatError(fmt::format("{}: tensor 'step' must be one i64", what));
  const std::int64_t step = it->second.data<std::int64_t>()[0];
  if (step < 0) throw FormatError(fmt::format("{}: negative step {}", what, step));
  return step;
}

std::string tensor_parallel_split_json(const std::vector<Parameter*>& params, const NamedTensors& other_experts) {
  nlohmann::json j = nlohmann::json::object();
  // Experts of one layer are alike: another rank's expert is split as this rank's of the same role.
  std::map<std::string, const Parameter*> experts_by_role;
  std::set<std::string> own;
  for (const Parameter* p : params) {
    own.insert(p->name);
    if (p->tp_split_dim >= 0) j[p->name] = {p->tp_split_dim, p->tp_split_blocks};
    if (p->expert_parallel) experts_by_role.emplace(expert_role(p->name), p);
  }
  for (const auto& [name, _] : other_experts) {
    if (own.count(name)) continue;
    const auto it = experts_by_role.find(expert_role(name));
    if (it == experts_by_role.end())
      throw Error(fmt::format("saving a checkpoint: '{}' came from another expert-parallel rank but is no expert's tensor "
                              "this rank has a counterpart of",
                              name));
    if (it->second->tp_split_dim >= 0) j[name] = {it->second->tp_split_dim, it->second->tp_split_blocks};
  }
  return j.dump();
}

std::string checkpoint_metadata_json(const CheckpointMetadata& m) {
  nlohmann::json j;
  j["format"] = kCheckpointFormat;
  j["version"] = kCheckpointVersion;
  j["iteration"] = m.iteration;
  j["consumed_samples"] = m.consumed_samples;
  if (m.ramp.active()) j["rampup_batch_size"] = {m.ramp.start, m.ramp.increment, m.ramp.samples};
  j["optimizer"] = m.optimizer;
  j["optimizer_steps"] = m.optimizer_steps;
  if (m.optimizer_state_offset > 0) j["optimizer_state_offset"] = m.optimizer_state_offset;
  if (!m.optimizer_saved) j["optimizer_saved"] = false;
  if (m.skipped_iterations > 0 || m.loss_scale != 1.0 || m.loss_scale_hysteresis_tracker != 0)
    j["loss_scaler"] = {{"skipped_iterations", m.skipped_iterations},
                        {"scale", m.loss_scale},
                        {"growth_tracker", m.loss_scale_growth_tracker},
                        {"hysteresis_tracker", m.loss_scale_hysteresis_tracker}};
  j["layout"] = {{"world_size", m.world_size},
                 {"tensor_model_parallel_size", m.tensor_parallel},
                 {"pipeline_model_parallel_size", m.pipeline_parallel},
                 {"data_parallel_size", m.data_parallel},
                 {"virtual_pipeline_model_parallel_size", m.virtual_pipeline},
                 {"sequence_parallel", m.sequence_parallel}};
  if (m.expert_parallel > 1) j["layout"]["expert_model_parallel_size"] = m.expert_parallel;
  if (m.expert_tensor_parallel == 1) j["layout"]["expert_tensor_parallel_size"] = 1;
  if (m.first_stage_layers > 0) j["layout"]["decoder_first_pipeline_num_layers"] = m.first_stage_layers;
  if (m.last_stage_layers > 0) j["layout"]["decoder_last_pipeline_num_layers"] = m.last_stage_layers;
  if (m.embedding_in_split) j["layout"]["account_for_embedding_in_pipeline_split"] = true;
  if (m.loss_in_split) j["layout"]["account_for_loss_in_pipeline_split"] = true;
  j["bucket_size"] = m.bucket_size;
  j["global_batch_size"] = m.global_batch_size;
  j["seed"] = m.seed;
  j["config"] = m.config;
  if (m.param_schedule) {
    const OptimizerParamSchedule& ps = *m.param_schedule;
    j["opt_param_scheduler"] = {{"max_lr", ps.lr.lr},
                                {"min_lr", ps.lr.min_lr},
                                {"init_lr", ps.lr.init_lr},
                                {"lr_warmup_steps", ps.lr.warmup_samples},
                                {"lr_decay_steps", ps.lr.decay_samples},
                                {"lr_decay_style", ps.lr.style},
                                {"wsd_decay_steps", ps.lr.wsd_decay_samples},
                                {"lr_wsd_decay_style", ps.lr.wsd_style},
                                {"start_wd", ps.weight_decay.start},
                                {"end_wd", ps.weight_decay.end},
                                {"wd_incr_steps", ps.weight_decay.incr_samples},
                                {"wd_incr_style", ps.weight_decay.style},
                                {"num_steps", m.scheduler_samples}};
    if (ps.decoupled()) {  // Megatron-Core keeps these in its param groups, not the scheduler's record
      j["opt_param_scheduler"]["decoupled_lr"] = ps.decoupled_lr;
      j["opt_param_scheduler"]["decoupled_min_lr"] = ps.decoupled_min_lr;
    }
  }
  return j.dump(2) + "\n";
}

CheckpointMetadata parse_checkpoint_metadata(std::string_view text, const std::string& where) {
  const nlohmann::json j = detail::parse_untrusted_json(text, where);
  const auto bad = [&](const std::string& why) { return FormatError(fmt::format("{}: {}", where, why)); };
  const auto field = [&](const nlohmann::json& obj, const char* key, const char* prefix) -> const nlohmann::json& {
    if (!obj.is_object()) throw bad(fmt::format("'{}' is {}, not a JSON object", prefix, obj.type_name()));
    auto it = obj.find(key);
    if (it == obj.end()) throw bad(fmt::format("no '{}{}'", prefix, key));
    return *it;
  };
  // An integer field in [lo, INT64_MAX].
  const auto integer = [&](const nlohmann::json& obj, const char* key, std::int64_t lo, const char* prefix = "") {
    const nlohmann::json& v = field(obj, key, prefix);
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > INT64_MAX) ||
        v.get<std::int64_t>() < lo)
      throw bad(fmt::format("'{}{}' is {}; expected an integer of at least {}", prefix, key, detail::describe_json(v), lo));
    return v.get<std::int64_t>();
  };
  const auto string = [&](const nlohmann::json& obj, const char* key, const char* prefix = "") {
    const nlohmann::json& v = field(obj, key, prefix);
    if (!v.is_string())
      throw bad(fmt::format("'{}{}' is {}; expected a string", prefix, key, detail::describe_json(v)));
    return v.get<std::string>();
  };
  const auto choice = [&](const nlohmann::json& obj, const char* key, const char* prefix,
                          std::initializer_list<const char*> allowed) {
    std::string v = string(obj, key, prefix);
    for (const char* a : allowed)
      if (v == a) return v;
    throw bad(fmt::format("'{}{}' is {}, not one of {}", prefix, key, quote_untrusted(v), fmt::join(allowed, ", ")));
  };
  // A finite number of at least 0.
  const auto number = [&](const nlohmann::json& obj, const char* key, const char* prefix) {
    const nlohmann::json& v = field(obj, key, prefix);
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0.0)
      throw bad(fmt::format("'{}{}' is {}; expected a number of at least 0", prefix, key, detail::describe_json(v)));
    return v.get<double>();
  };
  if (!j.is_object()) throw bad(fmt::format("expected a JSON object, found {}", detail::describe_json(j)));
  const std::string format = string(j, "format");
  if (format != kCheckpointFormat)
    throw bad(fmt::format("format is {}, not \"{}\"", quote_untrusted(format), kCheckpointFormat));
  const std::int64_t version = integer(j, "version", 0);
  if (version != kCheckpointVersion)
    throw bad(fmt::format("version {} is not one this Tessera reads (it reads version {})", version, kCheckpointVersion));

  CheckpointMetadata m;
  m.iteration = integer(j, "iteration", 1);
  m.consumed_samples = integer(j, "consumed_samples", 0);
  m.optimizer_steps = integer(j, "optimizer_steps", 0);
  m.optimizer = string(j, "optimizer");
  if (j.contains("optimizer_state_offset")) {
    m.optimizer_state_offset = integer(j, "optimizer_state_offset", 0);
    if (m.optimizer_state_offset > m.optimizer_steps)
      throw bad(fmt::format("optimizer_state_offset {} is past optimizer_steps {}", m.optimizer_state_offset,
                            m.optimizer_steps));
  }
  if (j.contains("optimizer_saved")) {
    const nlohmann::json& v = j["optimizer_saved"];
    if (!v.is_boolean()) throw bad(fmt::format("'optimizer_saved' is {}; expected true or false", detail::describe_json(v)));
    m.optimizer_saved = v.get<bool>();
  }
  if (j.contains("loss_scaler")) {
    const nlohmann::json& s = j["loss_scaler"];
    m.skipped_iterations = integer(s, "skipped_iterations", 0, "loss_scaler.");
    m.loss_scale_growth_tracker = integer(s, "growth_tracker", 0, "loss_scaler.");
    m.loss_scale_hysteresis_tracker = integer(s, "hysteresis_tracker", INT64_MIN, "loss_scaler.");
    const nlohmann::json& scale = field(s, "scale", "loss_scaler.");
    if (!scale.is_number() || !(scale.get<double>() > 0.0) || !std::isfinite(scale.get<double>()))
      throw bad(fmt::format("'loss_scaler.scale' is {}; expected a positive number", detail::describe_json(scale)));
    m.loss_scale = scale.get<double>();
  }
  const nlohmann::json& l = field(j, "layout", "");
  m.world_size = integer(l, "world_size", 1, "layout.");
  m.tensor_parallel = integer(l, "tensor_model_parallel_size", 1, "layout.");
  m.pipeline_parallel = integer(l, "pipeline_model_parallel_size", 1, "layout.");
  m.data_parallel = integer(l, "data_parallel_size", 1, "layout.");
  m.virtual_pipeline = integer(l, "virtual_pipeline_model_parallel_size", 1, "layout.");
  if (l.contains("expert_model_parallel_size")) m.expert_parallel = integer(l, "expert_model_parallel_size", 1, "layout.");
  if (l.contains("expert_tensor_parallel_size")) {
    m.expert_tensor_parallel = integer(l, "expert_tensor_parallel_size", 1, "layout.");
    if (m.expert_tensor_parallel != 1 || m.tensor_parallel == 1)
      throw bad(fmt::format("layout.expert_tensor_parallel_size is {} with tensor_model_parallel_size {}: "
                            "only 1 under tp > 1 is written (absent: the experts split over tp)",
                            m.expert_tensor_parallel, m.tensor_parallel));
  }
  if (l.contains("decoder_first_pipeline_num_layers"))
    m.first_stage_layers = integer(l, "decoder_first_pipeline_num_layers", 1, "layout.");
  if (l.contains("decoder_last_pipeline_num_layers"))
    m.last_stage_layers = integer(l, "decoder_last_pipeline_num_layers", 1, "layout.");
  const auto boolean = [&](const char* key) {
    const nlohmann::json& v = field(l, key, "layout.");
    if (!v.is_boolean())
      throw bad(fmt::format("'layout.{}' is {}; expected true or false", key, detail::describe_json(v)));
    return v.get<bool>();
  };
  if (l.contains("account_for_embedding_in_pipeline_split"))
    m.embedding_in_split = boolean("account_for_embedding_in_pipeline_split");
  if (l.contains("account_for_loss_in_pipeline_split")) m.loss_in_split = boolean("account_for_loss_in_pipeline_split");
  m.sequence_parallel = boolean("sequence_parallel");
  m.bucket_size = integer(j, "bucket_size", 1);
  m.global_batch_size = integer(j, "global_batch_size", 1);
  const nlohmann::json& seed = field(j, "seed", "");
  if (!seed.is_number_unsigned()) throw bad(fmt::format("'seed' is {}; expected a non-negative integer", detail::describe_json(seed)));
  m.seed = seed.get<std::uint64_t>();
  m.config = string(j, "config");

  if (j.contains("rampup_batch_size")) {
    const nlohmann::json& r = j["rampup_batch_size"];
    const auto whole = [](const nlohmann::json& x) { return x.is_number_integer() && x.get<std::int64_t>() >= 1; };
    if (!r.is_array() || r.size() != 3 || !whole(r[0]) || !whole(r[1]) || !whole(r[2]))
      throw bad(fmt::format("'rampup_batch_size' is {}; expected [start, increment, samples], integers ≥ 1",
                            detail::describe_json(r)));
    m.ramp = {r[0].get<std::int64_t>(), r[1].get<std::int64_t>(), r[2].get<std::int64_t>(), m.global_batch_size};
    if (m.ramp.samples / m.ramp.start > kMaxRampIterations)
      throw bad(fmt::format("'rampup_batch_size' ramps over more than {} iterations", kMaxRampIterations));
    if (m.ramp.start >= m.global_batch_size || (m.global_batch_size - m.ramp.start) % m.ramp.increment != 0)
      throw bad(fmt::format("'rampup_batch_size' [{}, {}, {}] does not ramp up to global_batch_size {} (start below it, "
                            "the difference a multiple of the increment)",
                            m.ramp.start, m.ramp.increment, m.ramp.samples, m.global_batch_size));
  }
  // The fields must agree with each other: a file edited by hand or damaged would otherwise resume
  // a run at a data position or learning rate that does not match its weights.
  std::int64_t samples = 0, world = 0;
  if (m.ramp.active()) {
    if (m.iteration > (INT64_MAX / 2) / m.global_batch_size || m.ramp.consumed_after(m.iteration) != m.consumed_samples)
      throw bad(fmt::format("consumed_samples {} is not what {} iterations of the batch ramp {}→{} consume",
                            m.consumed_samples, m.iteration, m.ramp.start, m.global_batch_size));
  } else if (__builtin_mul_overflow(m.iteration, m.global_batch_size, &samples) || samples != m.consumed_samples) {
    throw bad(fmt::format("consumed_samples {} is not iteration {} × global_batch_size {}", m.consumed_samples,
                          m.iteration, m.global_batch_size));
  }
  if (m.skipped_iterations > m.iteration || m.optimizer_steps != m.iteration - m.skipped_iterations)
    throw bad(fmt::format("optimizer_steps {} is not iteration {} − loss_scaler.skipped_iterations {} (one optimizer "
                          "step per iteration that was not skipped)",
                          m.optimizer_steps, m.iteration, m.skipped_iterations));
  if (__builtin_mul_overflow(m.tensor_parallel, m.pipeline_parallel, &world) ||
      __builtin_mul_overflow(world, m.data_parallel, &world) || world != m.world_size)
    throw bad(fmt::format("layout.world_size {} is not tensor × pipeline × data parallel sizes {} × {} × {}",
                          m.world_size, m.tensor_parallel, m.pipeline_parallel, m.data_parallel));
  if (j.contains("opt_param_scheduler")) {
    const nlohmann::json& o = j["opt_param_scheduler"];
    const char* p = "opt_param_scheduler.";
    OptimizerParamSchedule ps;
    ps.samples_per_iteration = m.global_batch_size;
    ps.lr.lr = number(o, "max_lr", p);
    ps.lr.min_lr = number(o, "min_lr", p);
    ps.lr.init_lr = number(o, "init_lr", p);
    ps.lr.warmup_samples = number(o, "lr_warmup_steps", p);
    ps.lr.decay_samples = integer(o, "lr_decay_steps", 1, p);
    ps.lr.style = choice(o, "lr_decay_style", p, {"constant", "linear", "cosine", "inverse-square-root", "WSD"});
    ps.lr.wsd_decay_samples = integer(o, "wsd_decay_steps", 0, p);
    ps.lr.wsd_style = choice(o, "lr_wsd_decay_style", p, {"exponential", "linear", "cosine", "minus_sqrt"});
    ps.weight_decay.start = number(o, "start_wd", p);
    ps.weight_decay.end = number(o, "end_wd", p);
    ps.weight_decay.incr_samples = integer(o, "wd_incr_steps", 1, p);
    ps.weight_decay.style = choice(o, "wd_incr_style", p, {"constant", "linear", "cosine"});
    if (o.contains("decoupled_lr")) {
      ps.decoupled_lr = number(o, "decoupled_lr", p);
      ps.decoupled_min_lr = number(o, "decoupled_min_lr", p);
      if (ps.decoupled_min_lr > ps.decoupled_lr)
        throw bad(fmt::format("'opt_param_scheduler.decoupled_min_lr' {} is above decoupled_lr {}", ps.decoupled_min_lr,
                              ps.decoupled_lr));
    }
    const std::int64_t num_steps = integer(o, "num_steps", 0, p);
    // What the config reader refuses, a record refuses too (use_checkpoint_opt_param_scheduler runs on it).
    if (ps.lr.min_lr > ps.lr.lr || ps.lr.init_lr > ps.lr.lr)
      throw bad(fmt::format("'opt_param_scheduler' has min_lr {} and init_lr {}, which must not exceed max_lr {}",
                            ps.lr.min_lr, ps.lr.init_lr, ps.lr.lr));
    if (ps.weight_decay.end < ps.weight_decay.start)
      throw bad(fmt::format("'opt_param_scheduler.end_wd' {} is below start_wd {}", ps.weight_decay.end,
                            ps.weight_decay.start));
    std::int64_t steps = 0;
    if (m.ramp.active() ? num_steps > m.consumed_samples || (m.skipped_iterations == 0 && num_steps != m.consumed_samples)
                        : __builtin_mul_overflow(m.optimizer_steps, m.global_batch_size, &steps) || steps != num_steps)
      throw bad(fmt::format("'opt_param_scheduler.num_steps' {} is not {} (the scheduler counts the samples of the "
                            "updates taken)",
                            num_steps,
                            m.ramp.active() ? fmt::format("the consumed samples {} less the skipped iterations'",
                                                          m.consumed_samples)
                                            : fmt::format("optimizer_steps {} × global_batch_size {}",
                                                          m.optimizer_steps, m.global_batch_size)));
    m.param_schedule = ps;
    m.scheduler_samples = num_steps;
  } else if (m.ramp.active()) {  // Tessera writes both: the ramp's updates are not whole global batches
    throw bad("'rampup_batch_size' without 'opt_param_scheduler', whose num_steps counts the ramp's updates");
  } else {
    m.scheduler_samples = m.optimizer_steps * m.global_batch_size;  // within the range checked above
  }
  return m;
}

}  // namespace tessera
