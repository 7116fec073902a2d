#include "tessera/tools/generation_request.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tessera/generation.hpp"
#include "tessera/tensor.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/tools/beam_search.hpp"
#include "tessera/tools/text_generation.hpp"

namespace tessera {

namespace {

using nlohmann::json;

std::string type_name(const json& v) { return v.is_number_float() ? "a number" : std::string(v.type_name()); }

std::int64_t integer_field(const json& v, const std::string& name, std::int64_t lo, std::int64_t hi) {
  if (!v.is_number_integer())
    throw BadRequest(fmt::format("{} must be an integer, got {}", name, v.is_number() ? v.dump() : type_name(v)));
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
    throw BadRequest(fmt::format("{} must be in [{}, {}], got {}", name, lo, hi, v.dump()));
  const std::int64_t x = v.get<std::int64_t>();
  if (x < lo || x > hi) throw BadRequest(fmt::format("{} must be in [{}, {}], got {}", name, lo, hi, x));
  return x;
}

double number_field(const json& v, const std::string& name) {
  if (!v.is_number()) throw BadRequest(fmt::format("{} must be a number, got {}", name, type_name(v)));
  return v.get<double>();
}

bool bool_field(const json& v, const std::string& name) {
  if (!v.is_boolean()) throw BadRequest(fmt::format("{} must be true or false, got {}", name, type_name(v)));
  return v.get<bool>();
}

std::vector<std::string> string_list(const json& v, const std::string& name) {
  if (!v.is_array()) throw BadRequest(fmt::format("{} must be a list of strings, got {}", name, type_name(v)));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      throw BadRequest(fmt::format("{}[{}] must be a string, got {}", name, i, type_name(v[i])));
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

void check_finite(const float* row, std::int64_t vocab, std::size_t prompt) {
  if (!std::all_of(row, row + vocab, [](float v) { return std::isfinite(v); }))
    throw NonFiniteLogits(fmt::format("the model computed non-finite logits (NaN or infinity) for prompt {}", prompt));
}

// log p(ids[i] | ids[..i]) for i = 1 … n-1 of every prompt (Megatron's scoring: the first token has
// none). Cached: the prompts are the rows of one session, started from their first tokens and fed
// their own prompt token by token; a row leaves the session (select_rows) when its prompt is done.
std::vector<std::vector<double>> prompt_logprobs(Generator& generator,
                                                 const std::vector<std::vector<std::int32_t>>& prompts) {
  std::vector<std::vector<double>> out(prompts.size());
  std::vector<std::size_t> members;  // the session's rows, as indices of `prompts`
  std::vector<std::vector<std::int32_t>> firsts;
  for (std::size_t b = 0; b < prompts.size(); ++b)
    if (prompts[b].size() >= 2) {
      members.push_back(b);
      firsts.push_back({prompts[b][0]});
    }
  if (members.empty()) return out;
  std::int64_t longest = 0;  // the cache holds each prompt, no more
  for (std::size_t b : members) longest = std::max(longest, static_cast<std::int64_t>(prompts[b].size()));
  SessionStart s = generator.start_session(firsts, longest);
  if (!s.session) {  // no cached path: a full forward per token, prompt after prompt
    for (std::size_t b : members) {
      const std::vector<std::int32_t>& ids = prompts[b];
      for (std::size_t i = 1; i < ids.size(); ++i) {
        std::vector<std::int32_t> context(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(i));
        const Tensor logits = generator.next_token_logits(
            Tensor::from<std::int32_t>({1, static_cast<std::int64_t>(context.size())}, context));
        check_finite(logits.data<float>(), logits.size(1), b);
        out[b].push_back(token_logprob(logits.data<float>(), logits.size(1), ids[i]));
      }
    }
    return out;
  }
  Tensor logits = std::move(s.logits);  // of `members`, for their token i
  for (std::size_t i = 1;; ++i) {
    const Tensor cpu = logits.to(Device::cpu());
    const std::int64_t vocab = cpu.size(1);
    std::vector<std::int64_t> keep;
    std::vector<std::size_t> kept;
    for (std::size_t j = 0; j < members.size(); ++j) {
      const std::vector<std::int32_t>& ids = prompts[members[j]];
      const float* row = cpu.data<float>() + static_cast<std::int64_t>(j) * vocab;
      check_finite(row, vocab, members[j]);
      out[members[j]].push_back(token_logprob(row, vocab, ids[i]));
      if (ids.size() > i + 1) {
        keep.push_back(static_cast<std::int64_t>(j));
        kept.push_back(members[j]);
      }
    }
    if (kept.empty()) break;
    if (kept.size() != members.size()) s.session->select_rows(keep);
    members = std::move(kept);
    std::vector<std::int32_t> next;
    for (std::size_t b : members) next.push_back(prompts[b][i]);
    logits = s.session->step(next);
  }
  return out;
}

std::vector<std::string> segments_of(const Tokenizer& tokenizer, const std::vector<std::int32_t>& ids) {
  std::vector<std::string> segments;
  segments.reserve(ids.size());
  for (std::int32_t id : ids) segments.push_back(tokenizer.decode({id}));
  return segments;
}

// Megatron returns the whole beam (num_return_gen = beam_width): every hypothesis, best first, as
// prompt + generation (the stop token, and Megatron's padding after it, not included).
GenerationResponse beams_for_request(Generator& generator, const Tokenizer& tokenizer,
                                     const std::vector<std::int32_t>& prompt, const GenerationRequest& r,
                                     std::int32_t stop_token) {
  BeamSearchOptions o;
  o.beam_width = *r.beam_width;
  o.max_new_tokens = r.tokens_to_generate;
  o.stop_token = stop_token;
  o.length_penalty = r.length_penalty;
  o.prevent_newline_after_colon = r.prevent_newline_after_colon;
  GenerationResponse out;
  out.scores.emplace();
  for (BeamHypothesis& h : beam_search(generator, tokenizer, prompt, o)) {
    std::vector<std::int32_t> all = prompt;
    all.insert(all.end(), h.ids.begin(), h.ids.end());
    out.text.push_back(r.prompts.front() + tokenizer.decode(h.ids));
    out.segments.push_back(segments_of(tokenizer, all));
    out.scores->push_back(h.score);
  }
  return out;
}

}  // namespace

GenerationRequest parse_generation_request(std::string_view body) {
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::parse_error& e) {
    throw BadRequest(fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) throw BadRequest(fmt::format("the request body must be a JSON object, got {}", type_name(j)));
  GenerationRequest r;
  bool have_prompts = false;
  for (const auto& [key, v] : j.items()) {
    if (key == "prompts") {
      r.prompts = string_list(v, key);
      have_prompts = true;
    } else if (key == "tokens_to_generate") {
      r.tokens_to_generate = integer_field(v, key, 0, 1'000'000'000);
    } else if (key == "temperature") {
      r.temperature = number_field(v, key);
      if (!(r.temperature > 0.0 && r.temperature <= 100.0))
        throw BadRequest(fmt::format("temperature must be in (0, 100], got {}", v.dump()));
    } else if (key == "top_k") {
      r.top_k = integer_field(v, key, 0, 1000);
    } else if (key == "top_p") {
      r.top_p = number_field(v, key);
      if (!(r.top_p >= 0.0 && r.top_p <= 1.0)) throw BadRequest(fmt::format("top_p must be in [0, 1], got {}", v.dump()));
    } else if (key == "top_p_decay") {
      r.top_p_decay = number_field(v, key);
      if (!(r.top_p_decay > 0.0 && r.top_p_decay <= 1.0))
        throw BadRequest(fmt::format("top_p_decay must be in (0, 1], got {}", v.dump()));
    } else if (key == "top_p_bound") {
      r.top_p_bound = number_field(v, key);
      if (!(r.top_p_bound > 0.0 && r.top_p_bound <= 1.0))  // ≤ top_p: checked below, with every field read
        throw BadRequest(fmt::format("top_p_bound must be in (0, top_p], got {}", v.dump()));
    } else if (key == "logprobs") {
      r.logprobs = bool_field(v, key);
    } else if (key == "add_BOS") {
      r.add_BOS = bool_field(v, key);
    } else if (key == "stop_token") {
      r.stop_token = integer_field(v, key, 0, std::numeric_limits<std::int32_t>::max());
    } else if (key == "random_seed") {
      r.random_seed = integer_field(v, key, -1, std::numeric_limits<std::int64_t>::max());
    } else if (key == "stop") {
      r.stop = string_list(v, key);
      for (std::size_t i = 0; i < r.stop.size(); ++i)
        if (r.stop[i].empty()) throw BadRequest(fmt::format("stop[{}] is empty", i));
    } else if (key == "stop_on_eol") {
      r.stop_on_eol = bool_field(v, key);
    } else if (key == "stop_on_double_eol") {
      r.stop_on_double_eol = bool_field(v, key);
    } else if (key == "prevent_newline_after_colon") {
      r.prevent_newline_after_colon = bool_field(v, key);
    } else if (key == "no_log") {
      r.no_log = bool_field(v, key);
    } else if (key == "beam_width") {
      r.beam_width = integer_field(v, key, 1, kMaxBeamWidth);
    } else if (key == "length_penalty") {
      // Bounded: length^penalty past ±10 overflows or underflows (a score of NaN, inf or -0), and no
      // useful penalty is that large (Megatron's default is 1).
      r.length_penalty = number_field(v, key);
      if (!(std::abs(r.length_penalty) <= kMaxLengthPenalty))
        throw BadRequest(fmt::format("length_penalty must be in [-{}, {}], got {}", kMaxLengthPenalty,
                                     kMaxLengthPenalty, v.dump()));
    } else if (key == "max_len" || key == "sentences") {
      throw BadRequest(fmt::format("{} is Megatron's legacy name: use {}", key,
                                   key == "max_len" ? "tokens_to_generate" : "prompts"));
    } else {
      throw BadRequest(fmt::format(
          "unknown field {} (known: prompts, tokens_to_generate, temperature, top_k, top_p, top_p_decay, top_p_bound, "
          "logprobs, add_BOS, stop_token, random_seed, stop, stop_on_eol, stop_on_double_eol, "
          "prevent_newline_after_colon, no_log, beam_width, length_penalty)",
          json(key).dump()));
    }
  }
  if (!have_prompts) throw BadRequest("prompts is required: a list of 1 to 128 strings");
  if (r.prompts.empty() || r.prompts.size() > kMaxPrompts)
    throw BadRequest(fmt::format("prompts must hold 1 to {} strings, got {}", kMaxPrompts, r.prompts.size()));
  if (r.beam_width) {
    // Megatron's beam search takes none of the sampling fields (it ignores them): refused, not ignored.
    for (const char* field : {"temperature", "top_k", "top_p", "top_p_decay", "top_p_bound", "random_seed",
                              "logprobs", "stop", "stop_on_eol", "stop_on_double_eol"})
      if (j.contains(field))
        throw BadRequest(fmt::format("{} cannot be used with beam_width: beam search takes prompts, "
                                     "tokens_to_generate, add_BOS, stop_token, length_penalty and "
                                     "prevent_newline_after_colon",
                                     field));
    if (r.prompts.size() != 1)
      throw BadRequest(fmt::format("beam_width: beam search takes one prompt, got {}", r.prompts.size()));
    if (r.tokens_to_generate == 0) throw BadRequest("beam_width: beam search needs tokens_to_generate > 0");
    return r;
  }
  if (j.contains("length_penalty")) throw BadRequest("length_penalty is used only by beam search: give beam_width");
  if (r.tokens_to_generate == 0 && !r.logprobs)
    throw BadRequest("tokens_to_generate = 0 (scoring the prompts) needs logprobs = true");
  if (r.top_k > 0 && r.top_p > 0.0) throw BadRequest("top_p and top_k > 0 cannot be used together: give one of them");
  if (j.contains("top_p_decay") && r.top_p == 0.0) throw BadRequest("top_p_decay needs top_p > 0");
  if (j.contains("top_p_bound")) {
    if (r.top_p == 0.0) throw BadRequest("top_p_bound needs top_p > 0");
    if (r.top_p_bound > r.top_p)
      throw BadRequest(fmt::format("top_p_bound must be in (0, top_p], got {} > top_p {}", r.top_p_bound, r.top_p));
  }
  return r;
}

std::vector<std::vector<std::int32_t>> tokenize_generation_request(const Tokenizer& tokenizer,
                                                                   std::int64_t seq_length,
                                                                   const GenerationRequest& r) {
  if (r.stop_token && *r.stop_token >= tokenizer.vocab_size())
    throw BadRequest(fmt::format("stop_token {} is not in the vocabulary (0 … {})", *r.stop_token,
                                 tokenizer.vocab_size() - 1));
  // Tokenize and check every prompt before generating for any.
  std::vector<std::vector<std::int32_t>> prompts;
  for (std::size_t i = 0; i < r.prompts.size(); ++i) {
    std::vector<std::int32_t> ids = tokenizer.encode(r.prompts[i]);
    if (r.add_BOS) ids.insert(ids.begin(), tokenizer.eod());
    if (ids.empty()) throw BadRequest(fmt::format("prompts[{}] is empty: an empty prompt needs add_BOS = true", i));
    const auto total = static_cast<std::int64_t>(ids.size()) + r.tokens_to_generate;
    if (total > seq_length)
      throw BadRequest(fmt::format(
          "prompts[{}] ({} tokens) + tokens_to_generate ({}) = {} tokens would exceed the context of {} tokens "
          "(the model's seq_length)",
          i, ids.size(), r.tokens_to_generate, total, seq_length));
    prompts.push_back(std::move(ids));
  }
  return prompts;
}

GenerationResponse generate_for_request(Generator& generator, const Tokenizer& tokenizer, std::int64_t seq_length,
                                        const GenerationRequest& r) {
  std::random_device device;
  return generate_for_request(generator, tokenizer, seq_length, r,
                              (static_cast<std::uint64_t>(device()) << 32) ^ device());
}

GenerationResponse generate_for_request(Generator& generator, const Tokenizer& tokenizer, std::int64_t seq_length,
                                        const GenerationRequest& r, std::uint64_t entropy) {
  const std::vector<std::vector<std::int32_t>> prompts = tokenize_generation_request(tokenizer, seq_length, r);
  const auto stop_token = static_cast<std::int32_t>(r.stop_token.value_or(tokenizer.eod()));
  if (r.beam_width) return beams_for_request(generator, tokenizer, prompts.front(), r, stop_token);
  TextGenerationOptions o;
  o.max_new_tokens = r.tokens_to_generate;
  // Megatron: top_k = 1 is argmax; top_p = 0 is off.
  o.sampling.temperature = r.top_k == 1 ? 0.0 : r.temperature;
  o.sampling.top_k = r.top_k;
  o.sampling.top_p = r.top_p > 0.0 ? r.top_p : 1.0;
  o.stop_tokens = {stop_token};
  o.stop_strings = r.stop;
  o.window = seq_length;
  o.top_p_decay = r.top_p_decay;
  o.top_p_bound = r.top_p_bound;
  o.stop_on_eol = r.stop_on_eol;
  o.stop_on_double_eol = r.stop_on_double_eol;
  o.prevent_newline_after_colon = r.prevent_newline_after_colon;
  // random_seed: the same seed for every prompt, so that a prompt's result does not depend on its place
  // in the request; without it, each prompt its own.
  std::mt19937_64 unseeded(entropy);
  std::vector<std::uint64_t> seeds;
  for (std::size_t i = 0; i < prompts.size(); ++i)
    seeds.push_back(r.random_seed >= 0 ? static_cast<std::uint64_t>(r.random_seed) : unseeded());
  GenerationResponse out;
  out.text = r.prompts;
  if (r.tokens_to_generate == 0) {
    out.logprobs = prompt_logprobs(generator, prompts);
    for (const std::vector<std::int32_t>& ids : prompts) out.segments.push_back(segments_of(tokenizer, ids));
    return out;
  }
  // Every prompt a row of one batch (generate_texts), each with its own seed and stops.
  std::vector<GeneratedText> generated = generate_texts(generator, tokenizer, prompts, o, seeds);
  if (r.logprobs) out.logprobs.emplace();
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    GeneratedText& g = generated[i];
    out.text[i] += g.text;
    std::vector<std::int32_t> all = prompts[i];
    all.insert(all.end(), g.ids.begin(), g.ids.end());
    out.segments.push_back(segments_of(tokenizer, all));
    if (out.logprobs) out.logprobs->push_back(std::move(g.logprobs));
  }
  return out;
}

std::string generation_response_json(const GenerationResponse& response) {
  json j = json::object();
  j["text"] = response.text;
  j["segments"] = response.segments;
  if (response.scores)
    j["scores"] = *response.scores;  // Megatron's beam search answer has no logprobs
  else
    j["logprobs"] = response.logprobs ? json(*response.logprobs) : json(nullptr);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_json(std::string_view message) {
  return json{{"error", std::string(message)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace tessera
