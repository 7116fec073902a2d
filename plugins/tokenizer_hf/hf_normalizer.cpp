#include "hf_normalizer.hpp"

#include <stdexcept>
#include <vector>

#include <unicode/unorm2.h>
#include <unicode/ustring.h>

namespace tessera {

std::string nfc_normalize(std::string_view text) {
  bool ascii = true;
  for (const char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii || text.empty()) return std::string(text);
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* nfc = unorm2_getNFCInstance(&status);
  if (U_FAILURE(status)) throw std::runtime_error(std::string("ICU's NFC normalizer: ") + u_errorName(status));
  // UTF-8 → UTF-16 (ICU's normalizers work on UTF-16); invalid UTF-8 is left as it is.
  std::int32_t units = 0;
  status = U_ZERO_ERROR;
  u_strFromUTF8(nullptr, 0, &units, text.data(), static_cast<std::int32_t>(text.size()), &status);
  if (status != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(status)) return std::string(text);
  std::vector<UChar> source(static_cast<std::size_t>(units) + 1);
  status = U_ZERO_ERROR;
  u_strFromUTF8(source.data(), units + 1, nullptr, text.data(), static_cast<std::int32_t>(text.size()), &status);
  if (U_FAILURE(status)) return std::string(text);
  // NFC rarely lengthens a string (a composition exclusion decomposes): room for that, else the
  // length ICU asks for.
  std::vector<UChar> normalized(static_cast<std::size_t>(units) + 16);
  status = U_ZERO_ERROR;
  std::int32_t length =
      unorm2_normalize(nfc, source.data(), units, normalized.data(), static_cast<std::int32_t>(normalized.size()), &status);
  if (status == U_BUFFER_OVERFLOW_ERROR) {
    normalized.resize(static_cast<std::size_t>(length) + 1);
    status = U_ZERO_ERROR;
    length = unorm2_normalize(nfc, source.data(), units, normalized.data(), static_cast<std::int32_t>(normalized.size()),
                              &status);
  }
  if (U_FAILURE(status)) throw std::runtime_error(std::string("ICU's NFC normalization: ") + u_errorName(status));
  std::int32_t bytes = 0;
  status = U_ZERO_ERROR;
  u_strToUTF8(nullptr, 0, &bytes, normalized.data(), length, &status);
  std::string out(static_cast<std::size_t>(bytes), '\0');
  status = U_ZERO_ERROR;
  u_strToUTF8(out.data(), bytes, nullptr, normalized.data(), length, &status);
  if (U_FAILURE(status) && status != U_STRING_NOT_TERMINATED_WARNING)
    throw std::runtime_error(std::string("ICU's UTF-8 conversion: ") + u_errorName(status));
  return out;
}

}  // namespace tessera
