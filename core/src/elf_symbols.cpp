#include "elf_symbols.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera::detail {

namespace {

// Thrown only inside this file; the public function turns it into ElfSymbols::error.
[[noreturn]] void malformed(const std::string& why) { throw FormatError(why); }

// The file, read with pread at checked offsets only. The size is taken once, at open, and every
// read must lie inside it, so no header value can make a read (or an allocation) larger than the file.
class ElfFile {
 public:
  explicit ElfFile(const std::filesystem::path& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) malformed(fmt::format("cannot open it: {}", std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) malformed(fmt::format("cannot stat it: {}", std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) malformed("not a regular file");
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  ~ElfFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;

  std::uint64_t size() const { return size_; }

  // True when count × elem bytes from offset lie inside the file (written so nothing overflows).
  bool holds(std::uint64_t offset, std::uint64_t count, std::uint64_t elem) const {
    if (offset > size_) return false;
    return elem == 0 || count <= (size_ - offset) / elem;
  }

  template <typename T>
  std::vector<T> read_array(std::uint64_t offset, std::uint64_t count, const std::string& what) const {
    if (!holds(offset, count, sizeof(T)))
      malformed(fmt::format("{} ({} × {} bytes at offset {}) lies past the end of the file ({} bytes)", what, count,
                            sizeof(T), offset, size_));
    std::vector<T> out(static_cast<std::size_t>(count));
    read_exact(offset, out.data(), static_cast<std::size_t>(count) * sizeof(T), what);
    return out;
  }
  std::string read_text(std::uint64_t offset, std::uint64_t size, const std::string& what) const {
    if (!holds(offset, size, 1))
      malformed(fmt::format("{} ({} bytes at offset {}) lies past the end of the file ({} bytes)", what, size, offset,
                            size_));
    std::string out(static_cast<std::size_t>(size), '\0');
    read_exact(offset, out.data(), out.size(), what);
    return out;
  }
  template <typename T>
  T read_one(std::uint64_t offset, const std::string& what) const {
    return read_array<T>(offset, 1, what).front();
  }

 private:
  void read_exact(std::uint64_t offset, void* out, std::size_t bytes, const std::string& what) const {
    auto* p = static_cast<char*>(out);
    while (bytes > 0) {
      const ssize_t n = ::pread(fd_, p, bytes, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) malformed(fmt::format("cannot read {}: {}", what, std::strerror(errno)));
      if (n == 0) malformed(fmt::format("{} ends early: the file shrank while it was read", what));
      p += n;
      bytes -= static_cast<std::size_t>(n);
      offset += static_cast<std::uint64_t>(n);
    }
  }

  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// A string table section: names are looked up by offset, and each must end inside the table.
class StringTable {
 public:
  StringTable(const ElfFile& file, const std::vector<Elf64_Shdr>& sections, std::uint64_t index, std::string what)
      : what_(std::move(what)) {
    if (index == SHN_UNDEF || index >= sections.size())
      malformed(fmt::format("{} would be section {}, but the file's sections are numbered 1 to {}", what_, index,
                            sections.size() - 1));
    const Elf64_Shdr& s = sections[static_cast<std::size_t>(index)];
    if (s.sh_type != SHT_STRTAB)
      malformed(fmt::format("{} (section {}) has type {}, not SHT_STRTAB", what_, index, s.sh_type));
    text_ = file.read_text(s.sh_offset, s.sh_size, what_);
  }

  // The name at `offset`, for the `index`th entry of `kind` (named in the error).
  std::string_view at(std::uint64_t offset, std::string_view kind, std::size_t index) const {
    if (offset >= text_.size())
      malformed(fmt::format("the name of {} {} is at offset {}, past the end of {} ({} bytes)", kind, index, offset,
                            what_, text_.size()));
    const std::size_t end = text_.find('\0', static_cast<std::size_t>(offset));
    if (end == std::string::npos)
      malformed(fmt::format("the name of {} {} (offset {} in {}) is not terminated", kind, index, offset, what_));
    return std::string_view(text_).substr(static_cast<std::size_t>(offset), end - static_cast<std::size_t>(offset));
  }

 private:
  std::string what_;
  std::string text_;
};

std::vector<std::string> read_symbols(const std::filesystem::path& path, const std::string& section) {
  const ElfFile file(path);
  if (file.size() < sizeof(Elf64_Ehdr))
    malformed(fmt::format("{} bytes, too short for an ELF header ({} bytes)", file.size(), sizeof(Elf64_Ehdr)));
  const auto eh = file.read_one<Elf64_Ehdr>(0, "the ELF header");
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) malformed("not an ELF file (no \\x7fELF magic)");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64)
    malformed(fmt::format("not a 64-bit ELF file (class {})", eh.e_ident[EI_CLASS]));
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
    malformed(fmt::format("not a little-endian ELF file (data encoding {})", eh.e_ident[EI_DATA]));
  if (eh.e_type != ET_DYN) malformed(fmt::format("not a shared object (ELF type {}, expected ET_DYN = 3)", eh.e_type));
  if (eh.e_shoff == 0) malformed("no section header table (e_shoff = 0)");
  if (eh.e_shentsize != sizeof(Elf64_Shdr))
    malformed(fmt::format("section header size e_shentsize = {}, expected {}", eh.e_shentsize, sizeof(Elf64_Shdr)));

  // Extended numbering: when the count or the name table index do not fit the header's 16 bits,
  // they are in section 0's sh_size and sh_link.
  std::uint64_t count = eh.e_shnum;
  std::uint64_t names_index = eh.e_shstrndx;
  if (count == 0 || names_index == SHN_XINDEX) {
    const auto first = file.read_one<Elf64_Shdr>(eh.e_shoff, "section header 0");
    if (count == 0) count = first.sh_size;
    if (names_index == SHN_XINDEX) names_index = first.sh_link;
  }
  if (count == 0) malformed("no sections (e_shnum = 0)");
  const auto sections = file.read_array<Elf64_Shdr>(eh.e_shoff, count, "the section header table");
  if (names_index == SHN_UNDEF)
    malformed("the section name table index e_shstrndx is 0 (SHN_UNDEF): sections have no names");
  const StringTable section_names(file, sections, names_index, "the section name table");

  std::size_t target = 0;  // index 0 is SHN_UNDEF, never a real section
  for (std::size_t i = 1; i < sections.size() && target == 0; ++i)
    if (section_names.at(sections[i].sh_name, "section", i) == section) target = i;
  if (target == 0) return {};  // a library that exports nothing there
  if (target >= SHN_LORESERVE)
    malformed(fmt::format("section '{}' has index {}, beyond what a symbol's 16-bit section index can name", section,
                          target));

  std::size_t dynsym = 0;
  for (std::size_t i = 1; i < sections.size() && dynsym == 0; ++i)
    if (sections[i].sh_type == SHT_DYNSYM) dynsym = i;
  if (dynsym == 0) malformed("no dynamic symbol table (.dynsym)");
  const Elf64_Shdr& table = sections[dynsym];
  if (table.sh_entsize != sizeof(Elf64_Sym))
    malformed(fmt::format("the dynamic symbol table's entry size is {}, expected {}", table.sh_entsize,
                          sizeof(Elf64_Sym)));
  if (table.sh_size % sizeof(Elf64_Sym) != 0)
    malformed(fmt::format("the dynamic symbol table's size {} is not a multiple of {}", table.sh_size,
                          sizeof(Elf64_Sym)));
  const StringTable symbol_names(file, sections, table.sh_link, "the dynamic string table");
  const auto symbols = file.read_array<Elf64_Sym>(table.sh_offset, table.sh_size / sizeof(Elf64_Sym),
                                                  "the dynamic symbol table");

  std::vector<std::string> out;
  for (std::size_t k = 1; k < symbols.size(); ++k) {  // entry 0 is the undefined symbol
    const Elf64_Sym& sym = symbols[k];
    const int bind = ELF64_ST_BIND(sym.st_info);
    if (sym.st_shndx == target && (bind == STB_GLOBAL || bind == STB_WEAK) &&
        ELF64_ST_VISIBILITY(sym.st_other) == STV_DEFAULT)
      out.emplace_back(symbol_names.at(sym.st_name, "dynamic symbol", k));
  }
  return out;
}

}  // namespace

ElfSymbols elf_dynamic_symbols_in_section(const std::filesystem::path& path, const std::string& section) {
  ElfSymbols result;
  try {
    result.symbols = read_symbols(path, section);
  } catch (const FormatError& e) {
    result.error = e.what();
  } catch (const std::bad_alloc&) {  // tables are bounded by the file's size, but the file may be huge
    result.error = "out of memory reading its tables";
  }
  return result;
}

}  // namespace tessera::detail
