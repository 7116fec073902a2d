// No shell anywhere in the project: child processes start from an argument vector
// (tessera::run_process, subprocess with a list, CMake COMMAND lists), so a path, a config name or
// an option can never become shell syntax. This scans every source, test and build file for the
// calls that would hand a string to /bin/sh (the CI script .ci/run is a shell script by nature).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

TEST_CASE("no source, test or build file starts a shell", "[unit]") {
  namespace fs = std::filesystem;
  const std::vector<std::string> forbidden = {"popen(",       "system(",      "execl(",        "execlp(",
                                              "\"/bin/sh\"",  "\"sh\", \"-c\"", "shell=True",    "os.system(",
                                              "os.popen(",    "getoutput(",   "getstatusoutput(",
                                              "sh -c",        "bash -c"};
  std::size_t scanned = 0;
  for (const char* top : {"core", "kernels", "plugins", "apps", "benchmarks", "tests", "cmake", "docs/examples"}) {
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(TESSERA_SOURCE_DIR) / top)) {
      const std::string ext = entry.path().extension().string(), name = entry.path().filename().string();
      const bool source = ext == ".cpp" || ext == ".hpp" || ext == ".h" || ext == ".cu" || ext == ".py" ||
                          ext == ".cmake" || ext == ".js" || name == "CMakeLists.txt";
      if (!entry.is_regular_file() || !source || name == "test_no_shell.cpp") continue;
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
