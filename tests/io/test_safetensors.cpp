// load_safetensors on corrupt or hostile headers: every problem is a FormatError naming the file,
// found before anything is allocated (no bad_alloc, no read past the end).
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "expect_error.hpp"
#include "tessera/error.hpp"
#include "tessera/io/safetensors.hpp"
#include "test_util.hpp"

using namespace tessera;
using tessera::test::TempDir;

namespace {

// Writes a safetensors file with the given header text and `data_bytes` zero bytes of data.
std::string write_file(const TempDir& dir, const std::string& header, std::size_t data_bytes) {
  const std::string path = dir / "bad.safetensors";
  std::vector<unsigned char> bytes(8);
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(n >> (8 * i));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.resize(bytes.size() + data_bytes, 0);
  tessera::test::write_bytes(path, bytes);
  return path;
}

std::string load_error(const std::string& path) {
  return message_of<FormatError>([&] { load_safetensors(path); });
}

}  // namespace

TEST_CASE("safetensors round trip", "[unit]") {
  TempDir dir;
  Tensor a = Tensor::full({2, 3}, 1.5f), b = Tensor::zeros({0, 4});
  save_safetensors(dir / "ok.safetensors", {{"a", a}, {"empty", b}}, {{"format", "pt"}});
  SafetensorsFile f = load_safetensors(dir / "ok.safetensors");
  REQUIRE(f.tensors.at("a").shape() == Shape{2, 3});
  CHECK(f.tensors.at("a").data<float>()[5] == 1.5f);
  CHECK(f.tensors.at("empty").shape() == Shape{0, 4});
  CHECK(f.metadata.at("format") == "pt");
}

TEST_CASE("the data's checksum: written in the header, checked on load; files without one load", "[unit]") {
  TempDir dir;
  const std::string path = dir / "sum.safetensors";
  Tensor a = Tensor::full({64}, 0.25f), b = Tensor::full({3, 5}, -2.0f);
  save_safetensors(path, {{"a", a}, {"b", b}}, {{"format", "pt"}});
  const SafetensorsFile f = load_safetensors(path);
  REQUIRE(f.metadata.count(kSafetensorsChecksumKey) == 1);
  CHECK(f.metadata.at(kSafetensorsChecksumKey).size() == 16);
  CHECK(f.metadata.at(kSafetensorsChecksumKey) != std::string(16, '0'));
  // One flipped bit in the last tensor's data, or in the first's: the load names the file.
  for (const std::int64_t from_end : {1, 4 * 15 + 3}) {
    std::vector<unsigned char> bytes = tessera::test::read_bytes(path);
    bytes[bytes.size() - static_cast<std::size_t>(from_end)] ^= 0x10;
    const std::string bad = dir / "flipped.safetensors";
    tessera::test::write_bytes(bad, bytes);
    const std::string msg = load_error(bad);
    CHECK_THAT(msg, Catch::Contains("flipped.safetensors") && Catch::Contains("does not match the checksum"));
  }
  // A file from elsewhere (no checksum key) loads as it is.
  const std::string plain = write_file(dir, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8);
  CHECK(load_safetensors(plain).tensors.at("w").data<float>()[1] == 0.0f);
}

TEST_CASE("corrupt safetensors headers are FormatErrors naming the file", "[unit]") {
  TempDir dir;
  std::string msg;
  SECTION("a shape whose byte size is far larger than the file") {
    msg = load_error(write_file(dir, R"({"w":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,16]}})", 16));
    CHECK(msg.find("data_offsets") != std::string::npos);
  }
  SECTION("a shape whose element count overflows 64 bits") {
    msg = load_error(
        write_file(dir, R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}})", 16));
    CHECK(msg.find("64 bits") != std::string::npos);
  }
  SECTION("a shape whose byte size overflows 64 bits") {
    msg = load_error(write_file(dir, R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,16]}})", 16));
    CHECK(msg.find("overflows") != std::string::npos);
  }
  SECTION("a negative dimension") {
    msg = load_error(write_file(dir, R"({"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}})", 16));
    CHECK(msg.find("non-negative") != std::string::npos);
  }
  SECTION("offsets that end before they begin") {
    msg = load_error(write_file(dir, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[16,8]}})", 16));
    CHECK(msg.find("end before") != std::string::npos);
  }
  SECTION("offsets past the end of the file") {
    msg = load_error(write_file(dir, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", 16));
    CHECK(msg.find("past the end") != std::string::npos);
  }
  SECTION("offsets so large that adding the header size would wrap") {
    msg = load_error(write_file(
        dir, R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551610,18446744073709551614]}})", 16));
    CHECK(msg.find("past the end") != std::string::npos);
  }
  SECTION("two tensors sharing bytes") {
    msg = load_error(write_file(dir,
                                R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                16));
    CHECK(msg.find("overlapping") != std::string::npos);
  }
  SECTION("a header that is not a JSON object") {
    msg = load_error(write_file(dir, "[1, 2, 3]", 0));
    CHECK(msg.find("not a JSON object") != std::string::npos);
  }
  SECTION("an entry that is not an object") {
    msg = load_error(write_file(dir, R"({"w": 3})", 0));
    CHECK(msg.find("\"w\"") != std::string::npos);
  }
  SECTION("metadata with a value that is not a string") {
    msg = load_error(write_file(dir, R"({"__metadata__":{"step":3}})", 0));
    CHECK(msg.find("__metadata__") != std::string::npos);
    CHECK(msg.find("step") != std::string::npos);
  }
  SECTION("metadata that is not an object") {
    msg = load_error(write_file(dir, R"({"__metadata__":"x"})", 0));
    CHECK(msg.find("__metadata__") != std::string::npos);
  }
  CHECK(msg.find("bad.safetensors") != std::string::npos);
}

TEST_CASE("shapes whose element count overflows are ShapeErrors", "[unit]") {
  const std::string msg = message_of<ShapeError>([] { Tensor::empty({std::int64_t{1} << 40, std::int64_t{1} << 40}); });
  CHECK(msg.find("64 bits") != std::string::npos);
  CHECK_THROWS_AS(shape_numel({INT64_MAX, 2}), ShapeError);
  CHECK(shape_numel({INT64_MAX, 0}) == 0);
  // Fits in elements but not in bytes.
  CHECK_THROWS_AS(Tensor::empty({INT64_MAX / 2 + 1}), ShapeError);
  // Fits in bytes, but rounding up to the allocation alignment would wrap to a tiny block.
  CHECK_THROWS_AS(Tensor::empty({INT64_MAX / 2}), Error);
}
