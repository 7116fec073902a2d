#include "elf_symbols.hpp"

#include <elf.h>

#include <cstring>
#include <fstream>

namespace tessera::detail {

namespace {

template <typename T>
bool read_at(std::ifstream& in, std::uint64_t offset, T* out, std::size_t count = 1) {
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(sizeof(T) * count));
  return static_cast<bool>(in);
}

}  // namespace

std::vector<std::string> elf_dynamic_symbols_in_section(const std::filesystem::path& path,
                                                        const std::string& section) {
  std::vector<std::string> out;
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  const std::uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) return out;
  // Every table must lie inside the file: sizes in a corrupt header must not become allocations.
  const auto in_file = [&](std::uint64_t offset, std::uint64_t size) {
    return offset <= file_size && size <= file_size - offset;
  };
  Elf64_Ehdr eh{};
  if (!in || !read_at(in, 0, &eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
      eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shstrndx >= eh.e_shnum)
    return out;
  if (!in_file(eh.e_shoff, std::uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr))) return out;
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  if (!read_at(in, eh.e_shoff, sh.data(), sh.size())) return out;

  const auto read_strings = [&](const Elf64_Shdr& s) {
    std::string text;
    if (in_file(s.sh_offset, s.sh_size)) {
      text.resize(s.sh_size);
      if (!read_at(in, s.sh_offset, text.data(), text.size())) text.clear();
    }
    text.push_back('\0');  // terminates a malformed last entry
    return text;
  };
  const std::string section_names = read_strings(sh[eh.e_shstrndx]);
  std::size_t target = 0;  // index 0 is SHN_UNDEF, never a real section
  for (std::size_t i = 1; i < sh.size(); ++i)
    if (sh[i].sh_name < section_names.size() && section_names.c_str() + sh[i].sh_name == section) target = i;
  if (target == 0) return out;

  for (const Elf64_Shdr& s : sh) {
    if (s.sh_type != SHT_DYNSYM || s.sh_link >= sh.size() || s.sh_entsize != sizeof(Elf64_Sym) ||
        !in_file(s.sh_offset, s.sh_size))
      continue;
    const std::string names = read_strings(sh[s.sh_link]);
    std::vector<Elf64_Sym> syms(s.sh_size / sizeof(Elf64_Sym));
    if (!read_at(in, s.sh_offset, syms.data(), syms.size())) return out;
    for (const Elf64_Sym& sym : syms) {
      const int bind = ELF64_ST_BIND(sym.st_info);
      if (sym.st_shndx == target && (bind == STB_GLOBAL || bind == STB_WEAK) &&
          ELF64_ST_VISIBILITY(sym.st_other) == STV_DEFAULT && sym.st_name < names.size())
        out.emplace_back(names.c_str() + sym.st_name);
    }
  }
  return out;
}

}  // namespace tessera::detail
