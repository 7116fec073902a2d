// No shell anywhere in what Tessera runs: child processes start from an argument vector
// (tessera::run_process), so a path, a config name or an option can never become shell syntax.
// This scans the sources of the programs and libraries (not this test folder's harness scripts) for
// the calls that would hand a string to /bin/sh.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

TEST_CASE("no source of core, kernels, plugins, apps or benchmarks starts a shell", "[unit]") {
  namespace fs = std::filesystem;
  const std::vector<std::string> forbidden = {"popen(",       "system(",      "execl(",        "execlp(",
                                              "\"/bin/sh\"",  "\"sh\", \"-c\"", "shell=True",    "os.system(",
                                              "os.popen(",    "getoutput(",   "getstatusoutput("};
  std::size_t scanned = 0;
  for (const char* top : {"core", "kernels", "plugins", "apps", "benchmarks"}) {
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(TESSERA_SOURCE_DIR) / top)) {
      const std::string ext = entry.path().extension().string();
      if (!entry.is_regular_file() || (ext != ".cpp" && ext != ".hpp" && ext != ".h" && ext != ".cu" && ext != ".py"))
        continue;
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      const std::string s = text.str();
      ++scanned;
      for (const std::string& f : forbidden) {
        INFO(entry.path().string() << " contains " << f);
        CHECK(s.find(f) == std::string::npos);
      }
    }
  }
  CHECK(scanned > 50);  // the folders were found
}
