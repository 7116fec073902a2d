// TOML configs: parse, dump, parse the dump again (it must read back), read keys with the typed
// getters and check for unknown keys. Seeds: every config in configs/ and tests/config/data/ that
// stands alone.
#include <filesystem>

#include "fuzz_harness.hpp"
#include "tessera/config.hpp"

using namespace tessera;

TEST_CASE("fuzz: TOML config", "[fuzz]") {
  fuzz::FuzzTarget t;
  t.name = "config";
  for (const char* dir : {TESSERA_SOURCE_DIR "/configs", TESSERA_TESTS_DIR "/config/data"})
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
      if (e.path().extension() == ".toml") {
        const fuzz::Bytes text = fuzz::read_file_bytes(e.path());
        // Files that include others or are broken on purpose are not starting points.
        if (text.find("include") == std::string::npos && e.path().filename() != "broken.toml") t.seeds.push_back(text);
      }
  t.parse = [](const fuzz::Bytes& text) {
    const Config c = Config::from_string(text, "fuzz.toml");
    const std::string dumped = c.dump();
    const Config again = Config::from_string(dumped, "dump.toml");
    if (again.dump() != dumped) throw std::logic_error("dump does not read back to itself:\n" + dumped);
    for (const std::string& name : c.section_names()) {
      ConfigSection s = c.section(name);
      for (const std::string& key : s.keys()) {
        try { s.get_int(key, 0); } catch (const ConfigError&) {}
        try { s.get_float(key, 0.0); } catch (const ConfigError&) {}
        try { s.get_string(key, ""); } catch (const ConfigError&) {}
        try { s.get_string_list(key, {}); } catch (const ConfigError&) {}
        try { s.get_bool(key, false); } catch (const ConfigError&) {}
      }
    }
    c.check_no_unknown_keys();
  };
  t.iterations = 8000;
  fuzz::run_fuzz(t);
}
