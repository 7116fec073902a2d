#include "tessera/dataset.hpp"

namespace tessera {
const char* split_name(Split s) {
  switch (s) {
    case Split::train: return "train";
    case Split::valid: return "valid";
    case Split::test: return "test";
  }
  return "?";
}
}  // namespace tessera
