// Reads exported symbol names from an ELF file's dynamic symbol table, without loading it.
//
// This is the only reader of plugin files before they are loaded, so it treats every byte as
// untrusted: each offset and size is checked against the file's size (overflow-safe) before it is
// read, string table indices are checked, and no buffer is larger than the file. (Boost's
// library_info, used here before, read past its buffers on malformed files — e.g. e_shstrndx = 0
// — and crashed every command that lists plugins.) It reads .dynsym, not .symtab, so stripped
// libraries list the same as unstripped ones.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace tessera::detail {

struct ElfSymbols {
  std::vector<std::string> symbols;  // in .dynsym order
  std::string error;                 // why the file is not a readable ELF64 LE shared object; empty if it is
  bool ok() const { return error.empty(); }
};

// Names of the defined, default-visibility global/weak symbols placed in `section` (e.g.
// "tessera"). A valid shared object without that section has no symbols and no error.
ElfSymbols elf_dynamic_symbols_in_section(const std::filesystem::path& path, const std::string& section);

}  // namespace tessera::detail
