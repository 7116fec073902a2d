// Reads exported symbol names from an ELF file's dynamic symbol table, without loading it.
//
// Boost 1.74's library_info::symbols(section) reads only the static .symtab, which `strip` removes
// (installed and packaged libraries are usually stripped), so listing would miss their plugins.
// The dynamic table survives stripping: the plugin registry falls back to it.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace tessera::detail {

// Names of the defined, default-visibility global/weak symbols placed in `section` (e.g.
// "tessera"). Empty for files that are not 64-bit little-endian ELF or lack the section.
std::vector<std::string> elf_dynamic_symbols_in_section(const std::filesystem::path& path,
                                                        const std::string& section);

}  // namespace tessera::detail
