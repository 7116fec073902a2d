// The .npy format (numpy's np.save / np.load), only what a samples mapping needs: a C-order 2-D
// array of little-endian uint32 or uint64. Megatron-LM caches its mapping as such a file, so a
// mapping file is readable by numpy and the other way round.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace tessera::bert_t5_indexed {

struct NpyArray {
  int width = 4;  // bytes per element: 4 ('<u4') or 8 ('<u8')
  std::int64_t rows = 0, cols = 0;
  std::size_t data_offset = 0;  // where the elements start in the file
};

// Writes rows × cols elements of `width` bytes (host order: little-endian machines only) to path.
void write_npy(const std::string& path, const void* data, int width, std::int64_t rows, std::int64_t cols);

// Parses the header of a .npy file held in bytes[0, size); throws FormatError naming path for
// anything other than a C-order 2-D '<u4'/'<u8' array whose data fills the rest of the file exactly.
NpyArray parse_npy(const unsigned char* bytes, std::size_t size, const std::string& path);

}  // namespace tessera::bert_t5_indexed
