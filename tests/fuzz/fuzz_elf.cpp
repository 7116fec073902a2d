// Fuzzes the ELF reader the plugin registry lists plugins with (core/src/elf_symbols.cpp): every
// libtessera_*.so on the plugin path is read by it before anything is loaded, so a malformed file
// must end in an error reason, never a crash. Success with a reason is a clean outcome here.
//
// Seeds are built plugins cut down to what the reader parses — the ELF header, the section header
// table and the section name, dynamic symbol and dynamic string tables, re-laid out with their
// offsets fixed up — so that mutations land on those bytes rather than on machine code, plus one
// whole plugin as it is on disk.
#include <elf.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "elf_symbols.hpp"
#include "fuzz_harness.hpp"

namespace fs = std::filesystem;
using tessera::fuzz::Bytes;

namespace {

fs::path plugin_folder() {
  // The test runs with TESSERA_PLUGIN_PATH set to the build's plugin folder (tests/CMakeLists.txt).
  if (const char* env = std::getenv("TESSERA_PLUGIN_PATH")) {
    const std::string first = std::string(env).substr(0, std::string(env).find(':'));
    if (!first.empty()) return first;
  }
  return fs::path(TESSERA_BINARY_DIR) / "lib" / "tessera";
}

template <typename T>
T get(const Bytes& b, std::size_t at) {
  REQUIRE(at + sizeof(T) <= b.size());
  T v;
  std::memcpy(&v, b.data() + at, sizeof v);
  return v;
}

// A valid plugin reduced to the header, the section headers and the sections the reader reads
// (kept byte for byte, 8-byte aligned); every other section keeps its header with no bytes.
Bytes compact(const Bytes& so) {
  auto eh = get<Elf64_Ehdr>(so, 0);
  std::vector<Elf64_Shdr> sh;
  for (std::size_t i = 0; i < eh.e_shnum; ++i) sh.push_back(get<Elf64_Shdr>(so, eh.e_shoff + i * sizeof(Elf64_Shdr)));
  std::set<std::size_t> keep{eh.e_shstrndx};
  for (std::size_t i = 1; i < sh.size(); ++i)
    if (sh[i].sh_type == SHT_DYNSYM) keep.insert({i, sh[i].sh_link});
  Bytes out(sizeof(Elf64_Ehdr), '\0');
  const auto align = [&] { out.resize((out.size() + 7) / 8 * 8, '\0'); };
  for (std::size_t i = 1; i < sh.size(); ++i) {
    if (keep.count(i)) {
      REQUIRE(sh[i].sh_offset + sh[i].sh_size <= so.size());
      align();
      const std::size_t at = out.size();
      out += so.substr(sh[i].sh_offset, sh[i].sh_size);
      sh[i].sh_offset = at;
    } else {
      sh[i].sh_offset = 0;
      sh[i].sh_size = 0;
    }
  }
  align();
  eh.e_shoff = out.size();
  eh.e_phoff = 0;
  eh.e_phnum = 0;
  out.append(reinterpret_cast<const char*>(sh.data()), sh.size() * sizeof(Elf64_Shdr));
  std::memcpy(out.data(), &eh, sizeof eh);
  return out;
}

tessera::detail::ElfSymbols read_bytes_as_file(const Bytes& bytes) {
  const fs::path path = "fuzz_elf_input.so";
  tessera::fuzz::write_file_bytes(path, bytes);
  return tessera::detail::elf_dynamic_symbols_in_section(path, "tessera");
}

}  // namespace

TEST_CASE("fuzz: the plugin ELF reader", "[fuzz]") {
  const fs::path folder = plugin_folder();
  std::vector<Bytes> seeds;
  for (const char* name : {"libtessera_adam.so", "libtessera_schedule_1f1b.so"}) {
    INFO(folder / name);
    const Bytes whole = tessera::fuzz::read_file_bytes(folder / name);
    REQUIRE(whole.size() > sizeof(Elf64_Ehdr));
    Bytes small = compact(whole);
    // The cut-down seed must read exactly as the plugin does, or the mutations would test nothing.
    const auto from_whole = read_bytes_as_file(whole);
    const auto from_small = read_bytes_as_file(small);
    REQUIRE(from_whole.ok());
    REQUIRE_FALSE(from_whole.symbols.empty());
    REQUIRE(from_small.error == "");
    REQUIRE(from_small.symbols == from_whole.symbols);
    seeds.push_back(std::move(small));
    if (seeds.size() == 1) seeds.push_back(whole);
  }

  tessera::fuzz::FuzzTarget target;
  target.name = "elf";
  target.seeds = seeds;
  target.iterations = 10000;  // about 10 s on 2 busy cores; TESSERA_FUZZ_ITERATIONS for longer hunts
  target.parse = [](const Bytes& input) {
    const auto read = read_bytes_as_file(input);
    // A reason or symbols, never both; names come from inside the file. (Thrown as std::logic_error
    // so the harness keeps the input and reports it.)
    if (!read.ok() && !read.symbols.empty()) throw std::logic_error("symbols returned with an error: " + read.error);
    for (const auto& s : read.symbols)
      if (s.size() >= input.size()) throw std::logic_error("a symbol name longer than the file");
  };
  tessera::fuzz::run_fuzz(target);
  fs::remove("fuzz_elf_input.so");
}
