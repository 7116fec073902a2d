// The preprocess pipeline: one reader thread cuts the input into batches of documents, `workers`
// threads parse (JSON) and tokenise them, and the calling thread writes the results strictly in
// batch order. The number of batches in flight is bounded, so memory stays flat on any input size.
// A failure anywhere (unreadable file, bad JSON line) stops the pipeline; errors are reported for
// the first failing batch in input order, so the message does not depend on thread timing.
#include "tessera/tools/preprocess.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "tessera/data/indexed_dataset.hpp"
#include "tessera/tools/progress_bar.hpp"
#include "tessera/error.hpp"
#include "tessera/io/input_file.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/logging.hpp"
#include "tessera/quote.hpp"
#include "tessera/utf8.hpp"

namespace tessera {

namespace fs = std::filesystem;

std::vector<std::string> list_preprocess_inputs(const PreprocessOptions& options) {
  if (options.inputs.empty()) throw ConfigError("preprocess: no inputs given");
  auto keep = [&](const fs::path& p) {
    if (options.include_ext.empty()) return true;
    const std::string name = p.filename().string();
    return std::any_of(options.include_ext.begin(), options.include_ext.end(),
                       [&](const std::string& ext) { return name.size() >= ext.size() && name.ends_with(ext); });
  };
  std::vector<std::string> files;
  for (const auto& in : options.inputs) {
    std::error_code ec;
    const auto st = fs::status(in, ec);
    if (ec || !fs::exists(st)) throw FormatError(fmt::format("{}: no such file or folder", in));
    if (fs::is_directory(st)) {
      std::vector<std::string> found;
      for (auto it = fs::recursive_directory_iterator(in, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        std::error_code sec;
        if (fs::is_directory(it->status(sec)) || !keep(it->path())) continue;  // links followed
        const std::string kind = file_kind(it->path());
        if (kind == "regular file")
          found.push_back(it->path().string());
        else  // a FIFO would block the reader and a device may never end: skipped, with a warning
          log_warn("preprocess: skipping {}: a {}, not a regular file", it->path().string(), kind);
      }
      if (ec) throw FormatError(fmt::format("{}: cannot list folder: {}", in, ec.message()));
      std::sort(found.begin(), found.end());  // directory order is arbitrary; output must not be
      files.insert(files.end(), found.begin(), found.end());
    } else {
      // A file named explicitly is used whatever its extension, but it must be a regular file.
      require_regular_file(in, "the input");
      files.push_back(in);
    }
  }
  return files;
}

namespace {

struct RawDoc {
  std::string text;
  std::size_t file = 0;
  std::int64_t line = 0;  // 1-based JSONL line; 0 for a whole file
};

struct Batch {
  std::vector<RawDoc> docs;
  std::int64_t bytes = 0;
};

// Invalid UTF-8 in one plain-text document (= one file).
struct Utf8Report {
  std::size_t file = 0;
  std::int64_t invalid_bytes = 0;
  std::int64_t first_offset = 0, first_line = 0;
};

struct Result {
  std::vector<std::vector<std::vector<std::int32_t>>> tokens;  // per document, its sequences
  std::vector<Utf8Report> utf8;  // documents with invalid UTF-8, in order
  std::int64_t bytes = 0;
  std::exception_ptr error;
};

// Bytes of `text` that are not part of a valid UTF-8 character (0 for valid text); the first one's
// byte offset and 1-based line.
Utf8Report check_utf8(std::string_view text, std::size_t file) {
  Utf8Report r;
  r.file = file;
  for (std::size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const auto d = unicode::decode_utf8(text, i);
    if (!d.valid) {
      if (r.invalid_bytes++ == 0) {
        r.first_offset = static_cast<std::int64_t>(i);
        r.first_line = 1 + static_cast<std::int64_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(i), '\n'));
      }
    }
    i += d.len;
  }
  return r;
}

std::string document_text(const RawDoc& d, const std::vector<std::string>& files, const std::string& key) {
  if (key.empty()) return d.text;
  const std::string where = fmt::format("{}:{}", files[d.file], d.line);
  const nlohmann::json j = detail::parse_untrusted_json(d.text, where);
  if (!j.is_object()) throw FormatError(fmt::format("{}: expected a JSON object, got {}", where, detail::describe_json(j)));
  auto it = j.find(key);
  if (it == j.end()) {
    std::string keys;
    std::size_t listed = 0;
    for (auto k = j.begin(); k != j.end(); ++k) {
      if (listed == 8) {
        keys += fmt::format(", … ({} keys)", j.size());
        break;
      }
      keys += (listed++ ? ", " : "") + quote_untrusted(k.key(), 40);
    }
    throw FormatError(fmt::format("{}: no key {} in the JSON object (its keys: {})", where, quote_untrusted(key, 40),
                                  keys.empty() ? "none" : keys));
  }
  if (!it->is_string())
    throw FormatError(fmt::format("{}: {} is a {}, expected a string", where, quote_untrusted(key, 40), it->type_name()));
  return it->get<std::string>();
}

// Reads a file line by line with read(2) on a descriptor opened without blocking and checked to be a
// regular file (a FIFO or a device that took the place of a listed file is refused, not waited on),
// and with a cap on the length of one line.
class LineReader {
 public:
  LineReader(const std::string& path, std::uint64_t max_line) : path_(path), max_line_(max_line) {
    std::uint64_t size = 0;
    fd_ = open_regular_file(path, "the input", &size);
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  }
  ~LineReader() {
    if (fd_ >= 0) ::close(fd_);
  }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its '\n' (as std::getline: a last line without '\n' counts, nothing after
  // a final '\n' does); false at the end.
  bool next(std::string& line, std::int64_t line_no) {
    line.clear();
    while (true) {
      if (pos_ == end_) {
        if (eof_) return !line.empty();
        ssize_t n;
        do n = ::read(fd_, buf_.data(), buf_.size());
        while (n < 0 && errno == EINTR);
        if (n < 0) throw FormatError(fmt::format("{}:{}: read error: {}", path_, line_no, std::strerror(errno)));
        if (n == 0) {
          eof_ = true;
          return !line.empty();
        }
        pos_ = 0;
        end_ = static_cast<std::size_t>(n);
      }
      const char* start = buf_.data() + pos_;
      const auto* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
      const std::size_t take = nl ? static_cast<std::size_t>(nl - start) : end_ - pos_;
      if (line.size() + take > max_line_)
        throw FormatError(fmt::format("{}:{}: line longer than {} bytes", path_, line_no, max_line_));
      line.append(start, take);
      pos_ += take;
      if (nl) {
        ++pos_;
        return true;
      }
    }
  }

 private:
  std::string path_;
  std::uint64_t max_line_;
  int fd_ = -1;
  std::vector<char> buf_ = std::vector<char>(std::size_t{1} << 20);
  std::size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
};

class Pipeline {
 public:
  Pipeline(const Tokenizer& tok, const PreprocessOptions& o, std::vector<std::string> files)
      : tok_(tok), opt_(o), files_(std::move(files)), max_in_flight_(4 * std::max(1, o.workers)) {}

  PreprocessStats run() {
    const auto t0 = std::chrono::steady_clock::now();
    PreprocessStats stats;
    stats.files = static_cast<std::int64_t>(files_.size());
    std::int64_t total_bytes = 0;
    for (const auto& f : files_) {
      std::error_code ec;
      const auto sz = fs::file_size(f, ec);
      if (!ec) total_bytes += static_cast<std::int64_t>(sz);
    }
    const fs::path parent = fs::path(opt_.output_prefix).parent_path();
    if (!parent.empty()) {
      std::error_code ec;
      fs::create_directories(parent, ec);
      if (ec) throw FormatError(fmt::format("{}: cannot create the output folder: {}", parent.string(), ec.message()));
    }
    // Writes to temporaries; <prefix>.bin/.idx are replaced only by finalize() below, so on any error
    // an existing dataset stays as it was and the writer's destructor removes its temporaries.
    IndexedDatasetWriter writer(opt_.output_prefix, index_dtype_for_vocab(tok_.vocab_size()));
    ProgressBar bar("preprocess", total_bytes, opt_.progress);

    std::thread reader([this] { read_all(); });
    std::vector<std::thread> workers;
    for (int w = 0; w < std::max(1, opt_.workers); ++w) workers.emplace_back([this] { work(); });
    std::exception_ptr error;
    try {
      for (std::int64_t next = 0;; ++next) {
        Result r;
        {
          std::unique_lock<std::mutex> lock(m_);
          cv_result_.wait(lock, [&] { return results_.count(next) || (reading_done_ && next == batches_read_) || stop_; });
          if (stop_ && !results_.count(next)) break;
          if (!results_.count(next)) break;  // all batches written
          r = std::move(results_[next]);
          results_.erase(next);
          --in_flight_;
        }
        cv_space_.notify_one();
        if (r.error) std::rethrow_exception(r.error);
        for (const Utf8Report& u : r.utf8) {  // one warning per file, in input order
          ++stats.files_invalid_utf8;
          log_warn("preprocess: {}: {} byte(s) are not valid UTF-8 (the first at byte {}, line {}); kept as "
                   "byte-level tokens (--strict-utf8 makes this an error)",
                   files_[u.file], u.invalid_bytes, u.first_offset, u.first_line);
        }
        for (auto& doc : r.tokens) {
          std::erase_if(doc, [](const std::vector<std::int32_t>& seq) { return seq.empty(); });
          if (doc.empty()) {
            ++stats.empty_skipped;
            continue;
          }
          if (opt_.append_eod) doc.back().push_back(tok_.eod());
          for (const auto& seq : doc) {
            writer.add_sequence(seq);
            ++stats.sequences;
            stats.tokens += static_cast<std::int64_t>(seq.size());
          }
          writer.end_document();
          ++stats.documents;
        }
        stats.input_bytes += r.bytes;
        bar.update(stats.input_bytes, stats.documents, stats.tokens);
      }
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = stop_ || error != nullptr;
      if (!error) error = reader_error_;
    }
    cv_work_.notify_all();
    cv_space_.notify_all();
    reader.join();
    for (auto& w : workers) w.join();
    if (!error && reader_error_) error = reader_error_;
    if (error) std::rethrow_exception(error);
    writer.finalize();
    bar.finish(stats.input_bytes, stats.documents, stats.tokens);
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return stats;
  }

 private:
  // Reader thread: files → batches of raw documents.
  void read_all() {
    try {
      Batch batch;
      auto flush = [&] {
        if (batch.docs.empty()) return true;
        std::unique_lock<std::mutex> lock(m_);
        cv_space_.wait(lock, [&] { return in_flight_ < max_in_flight_ || stop_; });
        if (stop_) return false;
        work_.emplace_back(batches_read_++, std::move(batch));
        ++in_flight_;
        batch = Batch{};
        cv_work_.notify_one();
        return true;
      };
      auto add = [&](RawDoc d, std::int64_t bytes) {
        batch.bytes += bytes;
        batch.docs.push_back(std::move(d));
        if (batch.docs.size() >= kBatchDocs || batch.bytes >= kBatchBytes) return flush();
        return true;
      };
      for (std::size_t f = 0; f < files_.size(); ++f) {
        if (opt_.json_key.empty()) {
          // Regular files only (read_whole_file refuses a FIFO without blocking), at most the cap.
          std::string text = read_whole_file(files_[f], "the input", kMaxInputDocumentBytes);
          const auto bytes = static_cast<std::int64_t>(text.size());
          if (!add(RawDoc{std::move(text), f, 0}, bytes)) return;
        } else {
          LineReader in(files_[f], kMaxInputDocumentBytes);
          std::string line;
          std::int64_t line_no = 0;
          while (in.next(line, line_no + 1)) {
            ++line_no;
            const auto bytes = static_cast<std::int64_t>(line.size()) + 1;
            if (line.find_first_not_of(" \t\r") == std::string::npos) {
              batch.bytes += bytes;  // blank lines carry no document
              continue;
            }
            if (!add(RawDoc{std::move(line), f, line_no}, bytes)) return;
            line = std::string();
          }
        }
      }
      if (!flush()) return;
    } catch (...) {
      std::lock_guard<std::mutex> lock(m_);
      reader_error_ = std::current_exception();
      stop_ = true;
    }
    {
      std::lock_guard<std::mutex> lock(m_);
      reading_done_ = true;
    }
    cv_work_.notify_all();
    cv_result_.notify_all();
  }

  // Worker threads: batches → token lists (or the batch's first error).
  void work() {
    while (true) {
      std::pair<std::int64_t, Batch> job;
      {
        std::unique_lock<std::mutex> lock(m_);
        cv_work_.wait(lock, [&] { return !work_.empty() || reading_done_ || stop_; });
        if (stop_ || work_.empty()) return;
        job = std::move(work_.front());
        work_.pop_front();
      }
      Result r;
      r.bytes = job.second.bytes;
      try {
        r.tokens.reserve(job.second.docs.size());
        for (const RawDoc& d : job.second.docs) {
          if (opt_.json_key.empty()) {
            // JSON strings are valid UTF-8 by the time they parse; plain text is checked here.
            const Utf8Report u = check_utf8(d.text, d.file);
            if (u.invalid_bytes > 0 && opt_.strict_utf8)
              throw FormatError(fmt::format("{}: invalid UTF-8 at byte {} (line {}; {} invalid byte(s) in the file); "
                                            "--strict-utf8 refuses it",
                                            files_[d.file], u.first_offset, u.first_line, u.invalid_bytes));
            if (u.invalid_bytes > 0) r.utf8.push_back(u);
          }
          const std::string text = document_text(d, files_, opt_.json_key);
          auto& sequences = r.tokens.emplace_back();
          if (opt_.split_sentences)
            for (const std::string_view sentence : opt_.split_sentences(text)) sequences.push_back(tok_.encode(sentence));
          else
            sequences.push_back(tok_.encode(text));
        }
      } catch (...) {
        r.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(m_);
        results_[job.first] = std::move(r);
      }
      cv_result_.notify_all();
    }
  }

  static constexpr std::size_t kBatchDocs = 256;
  static constexpr std::int64_t kBatchBytes = 1 << 20;

  const Tokenizer& tok_;
  const PreprocessOptions& opt_;
  const std::vector<std::string> files_;
  const std::int64_t max_in_flight_;

  std::mutex m_;
  std::condition_variable cv_work_, cv_result_, cv_space_;
  std::deque<std::pair<std::int64_t, Batch>> work_;
  std::map<std::int64_t, Result> results_;
  std::int64_t batches_read_ = 0, in_flight_ = 0;
  bool reading_done_ = false, stop_ = false;
  std::exception_ptr reader_error_;
};

// Refuses an input that is one of the outputs (same device and inode as an existing <prefix>.bin or
// .idx, whatever the names): `-i x.bin -o x` would otherwise turn its own input into the dataset.
void refuse_input_as_output(const std::vector<std::string>& files, const std::string& prefix) {
  std::vector<std::pair<std::string, struct stat>> outputs;
  for (const char* ext : {".bin", ".idx"}) {
    struct stat st{};
    if (::stat((prefix + ext).c_str(), &st) == 0) outputs.emplace_back(prefix + ext, st);
  }
  if (outputs.empty()) return;
  for (const auto& f : files) {
    struct stat st{};
    if (::stat(f.c_str(), &st) != 0) continue;  // reported when it is read
    for (const auto& [out, ost] : outputs)
      if (st.st_dev == ost.st_dev && st.st_ino == ost.st_ino)
        throw ConfigError(fmt::format("preprocess: the input {} is the output {} (the same file); writing the "
                                      "dataset would replace its own input. Choose another --output-prefix",
                                      f, out));
  }
}

}  // namespace

PreprocessStats preprocess(const Tokenizer& tokenizer, const PreprocessOptions& options) {
  if (options.output_prefix.empty()) throw ConfigError("preprocess: no output prefix given");
  if (options.workers < 1) throw ConfigError(fmt::format("preprocess: workers must be >= 1, got {}", options.workers));
  std::vector<std::string> files = list_preprocess_inputs(options);
  refuse_input_as_output(files, options.output_prefix);
  Pipeline p(tokenizer, options, std::move(files));
  return p.run();
}

}  // namespace tessera
