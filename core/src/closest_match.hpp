// "Did you mean ...?" for misspelt config keys and plugin names.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace tessera::detail {

// Edit distance where swapping two neighbouring letters counts once ("gtp" → "gpt").
std::size_t edit_distance(const std::string& a, const std::string& b);

// The candidate nearest to `word`, if it is close enough to be a plausible typo.
std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" — ready to append to a message.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace tessera::detail
