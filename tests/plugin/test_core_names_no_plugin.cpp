// Core names no concrete plugin: the plugins a run gets by default are the `tessera` app's choice
// (apps/tessera/plugin_defaults.cpp), and what one plugin costs or copies is asked of the plugin
// (optimizer_plan.hpp, Tokenizer::file_keys). This scans the string literals of every file under
// core/src and core/include — comments are left out, so prose may still mention a plugin — for the
// name of any plugin that plugins/ exports (read from their TESSERA_PLUGIN lines) or that Tessera
// ships.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool identifier_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The contents of the string literals in C++ source text (plain, prefixed and raw), skipping
// comments and character literals.
std::vector<std::string> string_literals(const std::string& s) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.size();) {
    if (s.compare(i, 2, "//") == 0) {
      i = s.find('\n', i);
      if (i == std::string::npos) break;
    } else if (s.compare(i, 2, "/*") == 0) {
      i = s.find("*/", i + 2);
      if (i == std::string::npos) break;
      i += 2;
    } else if (s[i] == 'R' && i + 1 < s.size() && s[i + 1] == '"' &&
               (i == 0 || !identifier_char(s[i - 1]) || std::string_view("8uUL").find(s[i - 1]) != std::string_view::npos)) {
      const std::size_t open = s.find('(', i + 2);
      REQUIRE(open != std::string::npos);
      const std::string close = ")" + s.substr(i + 2, open - i - 2) + "\"";
      const std::size_t end = s.find(close, open + 1);
      REQUIRE(end != std::string::npos);
      out.push_back(s.substr(open + 1, end - open - 1));
      i = end + close.size();
    } else if (s[i] == '"') {
      std::string lit;
      for (++i; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) lit += s[i++];
        lit += s[i];
      }
      out.push_back(lit);
      ++i;
    } else if (s[i] == '\'' && !(i > 0 && std::isxdigit(static_cast<unsigned char>(s[i - 1])) && i + 1 < s.size() &&
                                   std::isxdigit(static_cast<unsigned char>(s[i + 1])))) {  // not a digit separator
      for (++i; i < s.size() && s[i] != '\''; ++i)
        if (s[i] == '\\') ++i;
      ++i;
    } else {
      ++i;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("the string-literal scanner skips comments and character literals", "[unit]") {
  const auto lits =
      string_literals("a = \"x\"; // \"gpt\"\n/* \"adam\" */ c = '\"'; d = 1'000; e = R\"d(q\"r)d\"; f = \"\\\"y\";");
  CHECK(lits == std::vector<std::string>{"x", "q\"r", "\\\"y"});
}

TEST_CASE("no file under core/ names a concrete plugin in a string literal", "[unit]") {
  const fs::path root = TESSERA_SOURCE_DIR;
  // Every name plugins/ exports, and the ones Tessera ships (in case a plugin folder moves).
  std::set<std::string> names = {"gpt",  "adam",        "distributed_adam", "gpt_indexed",
                                 "1f1b", "interleaved", "gpt2_bpe",         "byte"};
  const std::regex exported(R"(TESSERA_PLUGIN\(\s*\w+\s*,\s*(\w+)\s*,)");
  for (const auto& e : fs::recursive_directory_iterator(root / "plugins"))
    if (e.is_regular_file() && e.path().extension() == ".cpp") {
      const std::string text = read(e.path());
      for (std::sregex_iterator it(text.begin(), text.end(), exported), end; it != end; ++it) names.insert((*it)[1]);
    }
  CHECK(names.size() >= 8);

  std::size_t scanned = 0;
  for (const char* top : {"core/src", "core/include"})
    for (const auto& e : fs::recursive_directory_iterator(root / top)) {
      const std::string ext = e.path().extension().string();
      if (!e.is_regular_file() || (ext != ".cpp" && ext != ".hpp")) continue;
      ++scanned;
      for (const std::string& lit : string_literals(read(e.path()))) {
        INFO(e.path().string() << " has the string literal \"" << lit << "\", a plugin's name: core must not choose or "
                                  "special-case a concrete plugin (defaults belong to the app, costs to the plugin)");
        CHECK(names.count(lit) == 0);
      }
    }
  CHECK(scanned > 50);
}
