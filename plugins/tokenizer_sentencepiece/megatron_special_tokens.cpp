#include "megatron_special_tokens.hpp"

#include <sentencepiece_processor.h>

#include <fmt/format.h>

namespace tessera::sentencepiece_tokenizer {

namespace {

// The model's piece for a special id, or `fallback` where the model has none (id -1).
std::string piece_or(const sentencepiece::SentencePieceProcessor& sp, int id, const char* fallback) {
  return id >= 0 && id < sp.GetPieceSize() ? sp.IdToPiece(id) : std::string(fallback);
}

}  // namespace

MegatronSpecialTokens::MegatronSpecialTokens(const sentencepiece::SentencePieceProcessor& sp,
                                             std::int64_t vocab_extra_ids)
    : vocab_size_(sp.GetPieceSize()) {
  cls_ = add(sp, "<CLS>");
  sep_ = add(sp, "<SEP>");
  eod_ = add(sp, "<EOD>");
  mask_ = add(sp, "<MASK>");
  pad_ = add(sp, piece_or(sp, sp.pad_id(), "<PAD>"));
  bos_ = add(sp, piece_or(sp, sp.bos_id(), "<BOS>"));
  eos_ = add(sp, piece_or(sp, sp.eos_id(), "<EOS>"));
  for (std::int64_t i = 0; i < vocab_extra_ids; ++i) add(sp, fmt::format("<extra_id_{}>", i));
}

std::int32_t MegatronSpecialTokens::add(const sentencepiece::SentencePieceProcessor& sp, const std::string& text) {
  std::optional<std::int32_t> id = find(text);  // added before (a role given the same piece twice)
  if (!id) {
    const int piece = sp.PieceToId(text);  // unknown text gives the unk id, whose piece differs
    id = piece >= 0 && sp.IdToPiece(piece) == text ? piece : static_cast<std::int32_t>(vocab_size_++);
    tokens_.push_back({text, *id});
  }
  by_id_[*id] = text;
  return *id;
}

std::optional<std::int32_t> MegatronSpecialTokens::find(std::string_view text) const {
  for (const Token& t : tokens_)
    if (t.text == text) return t.id;
  return std::nullopt;
}

std::vector<std::int32_t> MegatronSpecialTokens::encode(std::string_view text, const EncodePieces& encode_pieces) const {
  std::vector<std::int32_t> ids;
  std::size_t at = 0;
  for (;;) {
    const Token* next = nullptr;
    std::size_t next_at = std::string_view::npos;
    for (const Token& t : tokens_) {
      if (t.text.empty()) continue;  // (a model's empty piece: found everywhere, it would never end)
      const std::size_t found = text.find(t.text, at);
      if (found < next_at) next = &t, next_at = found;  // strictly earlier: ties keep the first added
    }
    if (!next) break;
    encode_pieces(text.substr(at, next_at - at), ids);
    ids.push_back(next->id);
    at = next_at + next->text.size();
  }
  encode_pieces(text.substr(at), ids);
  return ids;
}

std::string MegatronSpecialTokens::decode(const std::vector<std::int32_t>& ids, const DecodePieces& decode_pieces) const {
  std::string text;
  std::size_t last = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto special = by_id_.find(ids[i]);
    if (special == by_id_.end()) continue;
    text += decode_pieces(std::vector<std::int32_t>(ids.begin() + last, ids.begin() + i)) + " ";
    text += special->second + " ";
    last = i + 1;
  }
  return text + decode_pieces(std::vector<std::int32_t>(ids.begin() + last, ids.end()));
}

}  // namespace tessera::sentencepiece_tokenizer
