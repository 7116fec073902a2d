// tessera plot RUN_LOG [-o OUT.png] [--gnuplot PROGRAM]: the loss (training and validation) and
// throughput (tokens/s) curves of a `tessera train` log, drawn to a PNG by gnuplot — for those
// without TensorBoard ([logging] tensorboard_dir). Reads the iteration lines ("iteration N/ M | … |
// lm loss: X | … | tokens/s: T |") and validation lines (" validation loss at iteration N | lm loss
// value: X | …"); a Megatron-LM log's lines parse too (without tokens/s there is no throughput panel).
// gnuplot runs as a child process without a shell (tessera/subprocess.hpp), reading a script and a
// data file from a temporary folder. docs/run-logs.md.
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "command.hpp"
#include "tessera/error.hpp"
#include "tessera/subprocess.hpp"

namespace tessera::app {
namespace {

namespace fs = std::filesystem;

struct Series {
  std::string name;
  std::vector<std::pair<std::int64_t, double>> points;  // (iteration, value)
};

struct RunLog {
  std::vector<Series> train_losses, valid_losses;  // one per loss name ("lm loss", "sop loss", …)
  Series tokens_per_second{"tokens/s", {}};
  std::int64_t iteration_lines = 0;
};

Series& series(std::vector<Series>& all, const std::string& name) {
  for (Series& s : all)
    if (s.name == name) return s;
  all.push_back({name, {}});
  return all.back();
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// " a: 1 | b: 2 |" → {(a, 1), (b, 2)}; fields without a number are left out.
std::vector<std::pair<std::string, double>> fields(const std::string& text) {
  std::vector<std::pair<std::string, double>> out;
  std::stringstream in(text);
  for (std::string field; std::getline(in, field, '|');) {
    const auto colon = field.rfind(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(field.substr(0, colon)), value = trim(field.substr(colon + 1));
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (!key.empty() && !value.empty() && end != value.c_str() && *end == '\0') out.emplace_back(key, v);
  }
  return out;
}

bool is_loss(const std::string& key) { return key.size() > 5 && key.compare(key.size() - 5, 5, " loss") == 0; }

RunLog parse_run_log(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("cannot read the run log {}: {}", path, std::strerror(errno)));
  static const std::regex iteration_re(R"(\biteration\s+(\d+)\s*/\s*(\d+)\s*\|(.*)$)");
  static const std::regex validation_re(R"(validation loss at iteration (\d+)\s*\|(.*)$)");
  RunLog log;
  std::smatch m;
  for (std::string line; std::getline(in, line);) {
    if (std::regex_search(line, m, validation_re)) {
      const std::int64_t it = std::stoll(m[1].str());
      for (const auto& [key, value] : fields(m[2].str()))
        if (key.size() > 6 && key.compare(key.size() - 6, 6, " value") == 0)
          series(log.valid_losses, key.substr(0, key.size() - 6)).points.emplace_back(it, value);
    } else if (std::regex_search(line, m, iteration_re)) {
      const std::int64_t it = std::stoll(m[1].str());
      ++log.iteration_lines;
      for (const auto& [key, value] : fields(m[3].str())) {
        if (is_loss(key)) series(log.train_losses, key).points.emplace_back(it, value);
        if (key == "tokens/s") log.tokens_per_second.points.emplace_back(it, value);
      }
    }
  }
  if (log.iteration_lines == 0)
    throw Error(fmt::format("{} has no iteration lines (\"iteration N/ M | … | lm loss: X | …\"): is it the output of "
                            "`tessera train`?", path));
  return log;
}

// A program name as posix_spawnp would find it; empty when it is not there.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : std::string();
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) return candidate.string();
  }
  return {};
}

// A gnuplot single-quoted string: only the quote itself needs doubling.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

struct TempFolder {
  fs::path path;
  TempFolder() {
    std::string tmpl = (fs::temp_directory_path() / "tessera-plot-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw Error(fmt::format("cannot create a temporary folder {}: {}", tmpl, std::strerror(errno)));
    path = tmpl;
  }
  ~TempFolder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// The data file: one gnuplot block (index i) per series, and the script that draws them.
std::string write_plot_files(const RunLog& log, const fs::path& dir, const std::string& title, const fs::path& png) {
  std::ofstream data(dir / "data.txt");
  int index = 0;
  std::vector<std::string> loss_plots;
  const auto block = [&](const Series& s) {
    data << "# " << s.name << "\n";
    for (const auto& [it, v] : s.points) data << it << ' ' << fmt::format("{:.9g}", v) << "\n";
    data << "\n\n";
    return index++;
  };
  for (const Series& s : log.train_losses)
    loss_plots.push_back(fmt::format("'data.txt' index {} using 1:2 with lines lw 2 title {}", block(s),
                                     quoted("train " + s.name)));
  for (const Series& s : log.valid_losses)
    loss_plots.push_back(fmt::format("'data.txt' index {} using 1:2 with linespoints pt 7 ps 1 lw 2 title {}",
                                     block(s), quoted("validation " + s.name)));
  const bool throughput = !log.tokens_per_second.points.empty();
  const int tokens_index = throughput ? block(log.tokens_per_second) : -1;
  data.close();
  if (!data) throw Error(fmt::format("cannot write {}", (dir / "data.txt").string()));

  std::string script = fmt::format(
      "set terminal pngcairo size 1000,{} font 'sans,10'\n"
      "set output {}\n"
      "set grid\n"
      "set lmargin at screen 0.09\n"  // both panels' plot areas aligned, the keys to their right
      "set rmargin at screen 0.80\n"
      "set key outside right top\n"
      "set xlabel 'iteration'\n",
      throughput ? 900 : 500, quoted(png.string()));
  if (throughput) script += "set multiplot layout 2,1 title " + quoted(title) + "\n";
  script += fmt::format("set title {}\nset ylabel 'loss'\n", quoted(throughput ? "loss" : title + ": loss"));
  if (loss_plots.empty()) {
    script += "set label 1 'no loss values in the log' at graph 0.5, 0.5 center\nplot NaN notitle\nunset label 1\n";
  } else {
    script += "plot ";
    for (std::size_t i = 0; i < loss_plots.size(); ++i) script += (i ? ", \\\n     " : "") + loss_plots[i];
    script += "\n";
  }
  if (throughput) {
    script += fmt::format(
        "set title 'throughput'\nset ylabel 'tokens/s'\nset yrange [0:*]\n"
        "plot 'data.txt' index {} using 1:2 with lines lw 2 title 'tokens/s'\nunset multiplot\n",
        tokens_index);
  }
  script += "set output\n";
  std::ofstream(dir / "plot.gp") << script;
  return (dir / "plot.gp").string();
}

int plot(const std::string& log_path, std::string out, const std::string& gnuplot) {
  const RunLog log = parse_run_log(log_path);
  const std::string program = find_program(gnuplot);
  if (program.empty())
    throw Error(fmt::format("cannot find {}: `tessera plot` draws with gnuplot; install it (Debian/Ubuntu: apt-get "
                            "install gnuplot-nox) or name the program with --gnuplot PATH",
                            gnuplot.find('/') != std::string::npos ? gnuplot : gnuplot + " in PATH"));
  if (out.empty()) out = fs::path(log_path).replace_extension(".png").string();
  const fs::path out_path = fs::absolute(out);
  if (!out_path.parent_path().empty() && !fs::is_directory(out_path.parent_path()))
    throw Error(fmt::format("cannot write {}: the folder {} does not exist", out, out_path.parent_path().string()));

  TempFolder tmp;
  const fs::path png = tmp.path / "plot.png";
  const std::string script = write_plot_files(log, tmp.path, fs::path(log_path).filename().string(), png);
  // gnuplot reads data.txt relative to its working directory: run it there via `cd` in the script.
  const std::string with_cd = (tmp.path / "run.gp").string();
  std::ofstream(with_cd) << "cd " << quoted(tmp.path.string()) << "\nload " << quoted(script) << "\n";
  const ProcessResult r = run_process({program, with_cd}, /*merge_stderr=*/true);
  if (!r.ok() || !fs::exists(png) || fs::file_size(png) == 0)
    throw Error(fmt::format("{} failed ({}) drawing {}:\n{}", program, r.describe(), out, r.output));
  std::error_code ec;
  fs::rename(png, out_path, ec);
  if (ec) {  // another file system: copy
    fs::copy_file(png, out_path, fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error(fmt::format("cannot write {}: {}", out, ec.message()));
  }
  std::int64_t valid_points = 0;
  for (const Series& s : log.valid_losses) valid_points += static_cast<std::int64_t>(s.points.size());
  fmt::print("{}: {} iteration lines, {} validation values{} → {}\n", log_path, log.iteration_lines, valid_points,
             log.tokens_per_second.points.empty() ? ", no tokens/s (no throughput panel)" : "", out);
  return 0;
}

struct PlotArgs {
  std::string log, out, gnuplot = "gnuplot";
};

RegisterCommand reg{{"plot",
                     [](CLI::App& sub) -> std::function<int()> {
                       auto a = std::make_shared<PlotArgs>();
                       sub.add_option("run_log", a->log, "the output of `tessera train` (its iteration lines)")
                           ->required()
                           ->check(CLI::ExistingFile);
                       sub.add_option("-o,--output", a->out, "the PNG to write (default: RUN_LOG with .png)");
                       sub.add_option("--gnuplot", a->gnuplot, "the gnuplot program (default: gnuplot in PATH)");
                       return [a] { return plot(a->log, a->out, a->gnuplot); };
                     },
                     "draw a training log's loss and throughput curves to a PNG (with gnuplot)"}};

}  // namespace
}  // namespace tessera::app
