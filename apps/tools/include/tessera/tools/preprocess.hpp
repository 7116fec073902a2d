// Text → tokens → Megatron indexed dataset (<output_prefix>.bin / .idx), the engine behind
// `tessera preprocess`.
//
// Inputs are files or folders (walked recursively, sorted, filtered by extension). Without
// json_key every file is one document (plain text or source code); with json_key every non-blank
// line of every file is a JSON object whose json_key string is one document (JSONL, as Megatron's
// preprocess_data.py reads). Documents are tokenised by `workers` threads but written in input
// order, so the output is byte-identical for any number of workers. Each document gets the EOD
// token appended (append_eod) and is one sequence; documents that tokenise to nothing are skipped,
// as Megatron skips them. With split_sentences (Megatron's --split-sentences) a document is instead
// one sequence per sentence that tokenises to something, its end recorded in doc_idx, and the EOD
// (if appended) ends its last sentence.
//
// Megatron names its output <prefix>_<key>_document.bin/.idx; Tessera writes exactly
// <output_prefix>.bin and <output_prefix>.idx (pass that prefix as Megatron's data path).
//
// Inputs must be regular files: one named directly that is not (a FIFO, a device, a socket) is a
// FormatError; such entries met while walking a folder are skipped with a warning. An input that is
// one of the outputs (same file as an existing <output_prefix>.bin/.idx) is a ConfigError before
// anything is written. The outputs are written to temporaries and renamed into place at the end, so
// a trainer reading the old dataset keeps valid files and a failed run leaves it untouched.
//
// Plain-text inputs are checked for UTF-8: invalid bytes are kept (byte-level BPE and the byte
// tokenizer encode any byte, and decode gives them back) with one warning per file naming the file,
// the count and the first offset; with strict_utf8 they are a FormatError. JSONL lines must be valid
// UTF-8 JSON anyway (an error naming file:line).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/tokenizer.hpp"

namespace tessera {

struct PreprocessOptions {
  std::vector<std::string> inputs;       // files and/or folders
  std::vector<std::string> include_ext;  // for folders: keep files ending in these (".py"); empty = all
  std::string json_key;                  // non-empty: inputs are JSONL
  std::string output_prefix;
  bool append_eod = true;
  int workers = 1;
  bool progress = true;                  // progress bar on stderr
  bool strict_utf8 = false;              // invalid UTF-8 in plain text: error instead of a warning
  // When set, cuts each document into sentences (views into it); called from the worker threads.
  std::function<std::vector<std::string_view>(std::string_view)> split_sentences;
};

// Largest plain-text input file (one document) and JSONL line accepted.
inline constexpr std::uint64_t kMaxInputDocumentBytes = std::uint64_t{4} << 30;

struct PreprocessStats {
  std::int64_t files = 0;
  std::int64_t documents = 0;      // written
  std::int64_t sequences = 0;      // written: one per document, or one per sentence with split_sentences
  std::int64_t empty_skipped = 0;  // documents with no tokens
  std::int64_t tokens = 0;         // written, EODs included
  std::int64_t input_bytes = 0;
  std::int64_t files_invalid_utf8 = 0;  // plain-text files with invalid UTF-8 (kept, warned)
  double seconds = 0;
};

// Lists the input files in processing order (FormatError naming a path that does not exist or is
// named directly and not a regular file; non-regular entries of folders are skipped with a warning).
std::vector<std::string> list_preprocess_inputs(const PreprocessOptions& options);

// Throws FormatError naming file and line for unreadable input, invalid JSON or a missing key.
// On error nothing is replaced: an existing <output_prefix>.bin/.idx stays as it was.
PreprocessStats preprocess(const Tokenizer& tokenizer, const PreprocessOptions& options);

}  // namespace tessera
