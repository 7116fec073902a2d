// Hugging Face tokenizers' "NFC" normalizer (Qwen2's and Qwen3's tokenizer.json): Unicode canonical
// composition, by ICU (libicu-dev: the Unicode Consortium's reference library; its tables follow the
// standard's versions as the Rust unicode-normalization crate's do).
#pragma once
#include <string>
#include <string_view>

namespace tessera {

// `text` in Normalization Form C. ASCII text is returned as it is without a conversion; text that is
// not valid UTF-8 too (Hugging Face's tokenizers only ever see valid UTF-8: Rust strings).
std::string nfc_normalize(std::string_view text);

}  // namespace tessera
