#include "reference_data.hpp"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

#include "test_util.hpp"

namespace tessera::test {

namespace {

const std::string kDir = TESSERA_BINARY_DIR "/tests/ops/ops_reference";  // in the build tree, wherever the test runs from

const nlohmann::json& manifest() {
  static const nlohmann::json m = [] {
    std::filesystem::create_directories(kDir);
    int status = 0;
    const std::string log =
        run_command({"/usr/bin/python3", TESSERA_TESTS_DIR "/ops/reference_ops.py", kDir}, &status, true);
    std::ofstream(kDir + "/python.log") << log;
    if (status != 0)
      throw std::runtime_error("reference_ops.py failed (needs /usr/bin/python3 with torch); see " +
                               kDir + "/python.log");
    std::ifstream f(kDir + "/manifest.json");
    return nlohmann::json::parse(f);
  }();
  return m;
}

}  // namespace

Tensor RefCase::load(const std::string& key) const {
  const auto& a = arrays.at(key);
  const Shape shape = a.at("shape").get<Shape>();
  const DType dt = a.at("dtype") == "i32" ? DType::i32 : DType::f32;
  Tensor t = Tensor::empty(shape, dt);
  const std::string path = kDir + "/" + a.at("file").get<std::string>();
  std::ifstream f(path, std::ios::binary);
  f.read(static_cast<char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
  if (!f || f.gcount() != static_cast<std::streamsize>(t.nbytes()))
    throw std::runtime_error("short read from " + path);
  return t;
}

std::vector<RefCase> reference_cases(const std::string& op) {
  std::vector<RefCase> out;
  for (const auto& c : manifest().at("cases"))
    if (c.at("op") == op) out.push_back({op, c.at("name"), c.at("params"), c.at("arrays")});
  if (out.empty()) throw std::runtime_error("no reference cases for op " + op);
  return out;
}

double rel_err(const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel())
    throw std::runtime_error(fmt::format("rel_err: {} vs {}", a.str(), b.str()));
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  double num = 0.0, den = 0.0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const double diff = static_cast<double>(pa[i]) - pb[i];
    num += diff * diff;
    den += static_cast<double>(pb[i]) * pb[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace tessera::test
