// run_fuzz(target): feeds a parser its regression files, then a seeded corpus of mutations of its
// valid seeds. Every input must end in success or a tessera::Error (a clean, named error); any other
// exception fails the test, and a crash or a hang (watchdog: 20 s for one input) ends the process,
// so CTest reports it. The input being parsed is always on disk first (fuzz_<name>_current.bin in
// the test's working folder), so a crash leaves its reproducer behind: copy it into
// regressions/<name>/ to keep it as a regression file.
//
// TESSERA_FUZZ_ITERATIONS=N runs N mutations instead of the target's default (longer local hunts);
// TESSERA_FUZZ_SEED=S changes the stream.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <thread>
#include <typeinfo>
#include <unistd.h>
#include <vector>

#include <catch2/catch.hpp>

#include "mutator.hpp"
#include "tessera/error.hpp"

namespace tessera::fuzz {

struct FuzzTarget {
  std::string name;                          // regressions/<name>/ holds its kept inputs
  std::vector<Bytes> seeds;                  // valid inputs the mutations start from
  std::function<void(const Bytes&)> parse;   // returns, or throws tessera::Error
  int iterations = 2000;
  int max_steps = 6;                         // mutations stacked on one input
};

inline Bytes read_file_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline void write_file_bytes(const std::filesystem::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}

class Watchdog {
 public:
  explicit Watchdog(std::string name) : name_(std::move(name)), thread_([this] { watch(); }) {}
  ~Watchdog() {
    done_ = true;
    thread_.join();
  }
  void started(const std::string& what) {
    what_ = what;
    since_ = now_s();
  }

 private:
  static std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  void watch() {
    while (!done_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (!done_ && now_s() - since_ > 20) {
        std::fprintf(stderr, "fuzz %s: input %s ran for more than 20 s (a hang); it is in fuzz_%s_current.bin\n",
                     name_.c_str(), what_.c_str(), name_.c_str());
        std::_Exit(3);
      }
    }
  }
  std::string name_;
  std::string what_ = "(none)";
  std::atomic<std::int64_t> since_{now_s()};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

inline void run_fuzz(const FuzzTarget& t) {
  REQUIRE(!t.seeds.empty());
  const auto env_int = [](const char* name, long long fallback) {
    const char* v = std::getenv(name);
    return v ? std::atoll(v) : fallback;
  };
  const long long iterations = env_int("TESSERA_FUZZ_ITERATIONS", t.iterations);
  const auto seed = static_cast<std::uint64_t>(env_int("TESSERA_FUZZ_SEED", 20261130));
  const std::filesystem::path current = "fuzz_" + t.name + "_current.bin";
  Watchdog watchdog(t.name);
  std::size_t clean_errors = 0, successes = 0, failures = 0;

  const auto attempt = [&](const Bytes& input, const std::string& what) {
    write_file_bytes(current, input);
    watchdog.started(what);
    try {
      t.parse(input);
      ++successes;
    } catch (const tessera::Error&) {
      ++clean_errors;
    } catch (const std::exception& e) {
      ++failures;
      const std::string keep = "fuzz_" + t.name + "_failure_" + std::to_string(failures) + ".bin";
      if (failures <= 10) write_file_bytes(keep, input);  // the first ten; the rest are likely the same bug
      FAIL_CHECK(fmt::format("{} ({} bytes) threw {} instead of a tessera::Error: {} — input kept in {}", what,
                             input.size(), typeid(e).name(), e.what(), std::filesystem::absolute(keep).string()));
    } catch (...) {
      ++failures;
      FAIL_CHECK(what << " threw something that is not a std::exception");
    }
  };

  // Every seed must parse: otherwise the mutations would only test the first check.
  for (std::size_t i = 0; i < t.seeds.size(); ++i) {
    INFO("seed " << i);
    REQUIRE_NOTHROW(t.parse(t.seeds[i]));
  }
  const std::filesystem::path kept = std::filesystem::path(TESSERA_TESTS_DIR) / "fuzz" / "regressions" / t.name;
  std::size_t regressions = 0;
  if (std::filesystem::is_directory(kept))
    for (const auto& entry : std::filesystem::directory_iterator(kept))
      if (entry.is_regular_file()) {
        attempt(read_file_bytes(entry.path()), "regression file " + entry.path().string());
        ++regressions;
      }

  std::uint64_t name_hash = 1469598103934665603ull;  // FNV-1a: the same stream on every library
  for (unsigned char c : t.name) name_hash = (name_hash ^ c) * 1099511628211ull;
  Mutator m(seed ^ name_hash);
  for (long long i = 0; i < iterations; ++i) {
    const Bytes& base = t.seeds[m.below(t.seeds.size())];
    attempt(m.mutate(base, t.seeds, t.max_steps), "mutation " + std::to_string(i));
  }
  std::filesystem::remove(current);
  std::printf("fuzz %s: %zu regression files, %lld mutations: %zu parsed, %zu clean errors, %zu other failures\n",
              t.name.c_str(), regressions, iterations, successes, clean_errors, failures);
  CHECK(failures == 0);
}

}  // namespace tessera::fuzz
