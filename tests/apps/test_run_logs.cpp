// Run logs people look at (docs/run-logs.md): TensorBoard event files from [logging] tensorboard_dir,
// read back by an independent Python reader (tensorboard_events.py: its own CRC-32C and protobuf
// decoding) and compared with the run's log lines; and `tessera plot` drawing a run's log to a PNG.
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "tessera/train/run_report.hpp"
#include "tessera/train/tensorboard_writer.hpp"
#include "tessera_cli.hpp"

namespace {

namespace fs = std::filesystem;
using tessera::test::CliRun;
using tessera::test::run_tessera;
using tessera::test::tessera_cli;

const std::string kReader = TESSERA_SOURCE_DIR "/tests/apps/tensorboard_events.py";

std::string python_reader(const std::vector<std::string>& args, int* status) {
  std::vector<std::string> argv{"/usr/bin/python3", kReader};
  argv.insert(argv.end(), args.begin(), args.end());
  return tessera::test::run_command(argv, status, true);
}

nlohmann::json dump_events(const std::string& dir) {
  int status = 0;
  const std::string out = python_reader({"dump", dir}, &status);
  INFO(out);
  REQUIRE(status == 0);
  return nlohmann::json::parse(out);
}

std::set<std::string> tags(const nlohmann::json& events) {
  std::set<std::string> t;
  for (const auto& s : events["scalars"]) t.insert(s["tag"].get<std::string>());
  return t;
}

bool gnuplot_here() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"})
    if (fs::exists(fs::path(dir) / "gnuplot")) return true;
  return false;
}

// Two numbers per iteration line of a run's output, by `line` (groups: iteration, first, second).
std::map<int, std::pair<double, double>> iteration_pairs(const std::string& output, const std::regex& line) {
  std::map<int, std::pair<double, double>> out;
  for (std::sregex_iterator m(output.begin(), output.end(), line), end; m != end; ++m)
    out[std::stoi((*m)[1])] = {std::stod((*m)[2]), std::stod((*m)[3])};
  return out;
}

}  // namespace

TEST_CASE("crc32c and the TFRecord framing", "[unit]") {
  CHECK(tessera::crc32c("123456789", 9) == 0xE3069283u);
  CHECK(tessera::crc32c("", 0) == 0u);
  // In two pieces: the same as at once.
  CHECK(tessera::crc32c("6789", 4, tessera::crc32c("12345", 5)) == 0xE3069283u);
  const std::uint32_t crc = 0xE3069283u;
  CHECK(tessera::masked_crc32c("123456789", 9) == static_cast<std::uint32_t>(((crc >> 15) | (crc << 17)) + 0xa282ead8u));

  const std::string event = tessera::event_file_version(0.0);
  // wall_time (field 1, fixed64) 0.0, file_version (field 3, length 13).
  CHECK(event == std::string("\x09\0\0\0\0\0\0\0\0\x1a\x0d" "brain.Event:2", 24));
  const std::string record = tessera::tfrecord(event);
  REQUIRE(record.size() == 8 + 4 + event.size() + 4);
  std::uint64_t length = 0;
  std::memcpy(&length, record.data(), 8);
  CHECK(length == event.size());
  CHECK(record.substr(12, event.size()) == event);

  // step 300 is a two-byte varint; the tag and the float as protobuf lays them out.
  const std::string s = tessera::event_scalar(0.0, 300, "lm loss", 1.0f);
  const std::string expected_tail = std::string("\x10\xac\x02\x2a\x10\x0a\x0e\x0a\x07lm loss\x15\x00\x00\x80\x3f", 21);
  CHECK(s.substr(9) == expected_tail);
}

TEST_CASE("a line's loss is the mean over its log window, as Megatron-LM's training_log", "[unit]") {
  tessera::test::CliWorkspace w;
  // Per-iteration lm losses (and grad norms) of a run's lines: iteration → (loss, grad norm).
  const auto lines = [&](const std::string& interval) {
    const CliRun t = tessera_cli({"train", w.config, "--set", "training.train_iters=6", "--set",
                                  "logging.log_interval=" + interval, "--set",
                                  "checkpoint.save=" + (w.dir / ("save_" + interval))});
    INFO(t.output);
    REQUIRE(t.ok());
    static const std::regex line(R"(iteration\s+(\d+)/.*\| lm loss: (\S+) \| grad norm: (\S+) \|)");
    return iteration_pairs(t.output, line);
  };
  const auto every = lines("1"), third = lines("3");
  REQUIRE(every.size() == 6);
  REQUIRE(third.size() == 2);
  for (const int it : {3, 6}) {
    INFO("iteration " << it);
    const double mean = (every.at(it - 2).first + every.at(it - 1).first + every.at(it).first) / 3;
    CHECK(third.at(it).first == Approx(mean).epsilon(2e-6));  // the lines print 7 digits
    CHECK(third.at(it).first != Approx(every.at(it).first).epsilon(2e-6));  // not the iteration's own
    CHECK(third.at(it).second == every.at(it).second);  // the grad norm is the iteration's own
  }
}

TEST_CASE("tensorboard_dir: event files with Megatron's tags equal the run's log lines", "[unit]") {
  tessera::test::CliWorkspace w;
  const std::string tb = w.dir / "tb/nested";
  const CliRun t = tessera_cli({"train", w.config, "--set", "training.train_iters=6", "--set",
                                "training.eval_interval=3", "--set", "logging.log_interval=2", "--set",
                                "logging.tensorboard_dir=" + tb});
  INFO(t.output);
  REQUIRE(t.ok());
  const std::string log = w.dir / "train.log";
  tessera::test::write_text(log, t.output);

  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(tb)) files.push_back(e.path());
  REQUIRE(files.size() == 1);
  const std::string name = files[0].filename().string();
  CHECK(name.rfind("events.out.tfevents.", 0) == 0);

  int status = 0;
  const std::string checked = python_reader({"check", tb, log}, &status);
  INFO(checked);
  CHECK(status == 0);

  const nlohmann::json events = dump_events(tb);
  CHECK(events["file_version"] == "brain.Event:2");
  const std::set<std::string> expected{"learning-rate", "learning-rate vs samples", "batch-size", "batch-size vs samples",
                                       "lm loss", "lm loss vs samples", "loss-scale", "loss-scale vs samples",
                                       "grad-norm", "grad-norm vs samples", "iteration-time", "lm loss validation",
                                       "lm loss validation vs samples", "lm loss validation ppl",
                                       "lm loss validation ppl vs samples"};
  CHECK(tags(events) == expected);
  // As Megatron-LM: each iteration's own scalars (tensorboard_log_interval 1, the default), whose
  // means over the windows are the lines' losses (checked above); iteration-time with each line
  // (2, 4, 6); validation at 3 and 6.
  std::map<std::string, std::vector<std::int64_t>> steps;
  for (const auto& s : events["scalars"]) steps[s["tag"]].push_back(s["step"]);
  CHECK(steps["lm loss"] == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6});
  CHECK(steps["lm loss vs samples"] == std::vector<std::int64_t>{4, 8, 12, 16, 20, 24});  // global batch 4
  CHECK(steps["grad-norm"].size() == 6);
  CHECK(steps["lm loss validation"] == std::vector<std::int64_t>{3, 6});
  CHECK(steps["iteration-time"] == std::vector<std::int64_t>{2, 4, 6});

  // tensorboard_log_interval = 3: iterations 3 and 6 only.
  const std::string tb3 = w.dir / "tb3";
  const CliRun every3 = tessera_cli({"train", w.config, "--set", "training.train_iters=6", "--set",
                                     "checkpoint.save=" + (w.dir / "save3"), "--set", "logging.tensorboard_dir=" + tb3,
                                     "--set", "logging.tensorboard_log_interval=3"});
  INFO(every3.output);
  REQUIRE(every3.ok());
  std::map<std::string, std::vector<std::int64_t>> steps3;
  const nlohmann::json events3 = dump_events(tb3);
  for (const auto& s : events3["scalars"]) steps3[s["tag"]].push_back(s["step"]);
  CHECK(steps3["lm loss"] == std::vector<std::int64_t>{3, 6});
  CHECK(steps3["learning-rate"] == std::vector<std::int64_t>{3, 6});
  CHECK(steps3.count("decoupled-learning-rate") == 0);

  // optimizer.decoupled_lr: Megatron-Core's "decoupled-learning-rate" too, the value the line shows.
  const std::string tbd = w.dir / "tbd";
  const CliRun decoupled = tessera_cli({"train", w.config, "--set", "training.train_iters=2", "--set",
                                        "checkpoint.save=" + (w.dir / "saved"), "--set", "logging.tensorboard_dir=" + tbd,
                                        "--set", "optimizer.lr_decay_style=\"constant\"", "--set",
                                        "optimizer.decoupled_lr=0.006"});
  INFO(decoupled.output);
  REQUIRE(decoupled.ok());
  std::vector<double> decoupled_values;
  const nlohmann::json events_decoupled = dump_events(tbd);
  for (const auto& s : events_decoupled["scalars"])
    if (s["tag"] == "decoupled-learning-rate") decoupled_values.push_back(s["value"].get<double>());
  REQUIRE(decoupled_values.size() == 2);
  CHECK(decoupled_values[0] == Approx(0.006));  // a constant rate

  // A second run into the same folder (a resume, say) adds its own file.
  const CliRun again = tessera_cli({"train", w.config, "--set", "training.train_iters=2", "--set",
                                    "checkpoint.save=" + (w.dir / "save2"), "--set", "logging.tensorboard_dir=" + tb});
  INFO(again.output);
  REQUIRE(again.ok());
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(tb)) ++n;
  CHECK(n == 2);
}

TEST_CASE("mixture-of-experts router losses: after the loss on every line, its window's mean, and in TensorBoard",
          "[unit]") {
  tessera::test::CliWorkspace w;
  const std::string tb = w.dir / "tb";
  // Per-iteration load_balancing_loss and z_loss of a run's lines.
  const auto lines = [&](const std::string& interval, const std::vector<std::string>& extra) {
    std::vector<std::string> args{"train", w.config, "--set", "training.train_iters=6", "--set",
                                  "logging.log_interval=" + interval, "--set", "checkpoint.save=" + (w.dir / ("s" + interval)),
                                  "--set", "model.num_experts=4", "--set", "model.moe_aux_loss_coeff=0.01", "--set",
                                  "model.moe_z_loss_coeff=0.001"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CliRun t = tessera_cli(args);
    INFO(t.output);
    REQUIRE(t.ok());
    static const std::regex line(R"(iteration\s+(\d+)/.*\| lm loss: \S+ \| load_balancing_loss: (\S+) \| z_loss: (\S+) \| grad norm:)");
    return iteration_pairs(t.output, line);
  };
  const auto every = lines("1", {"--set", "logging.tensorboard_dir=" + tb}), third = lines("3", {});
  REQUIRE(every.size() == 6);
  REQUIRE(third.size() == 2);
  for (const int it : {3, 6}) {
    INFO("iteration " << it);
    CHECK(third.at(it).first ==
          Approx((every.at(it - 2).first + every.at(it - 1).first + every.at(it).first) / 3).epsilon(2e-6));
    CHECK(third.at(it).second ==
          Approx((every.at(it - 2).second + every.at(it - 1).second + every.at(it).second) / 3).epsilon(2e-6));
  }
  // A router spreading its tokens about evenly is near 1 (its value for a perfectly balanced one).
  CHECK(every.at(1).first == Approx(1.0).epsilon(0.2));
  // TensorBoard: Megatron-LM's tags, each iteration's own value.
  std::map<std::string, std::vector<double>> scalars;
  const nlohmann::json events = dump_events(tb);  // kept: a range-for over a temporary's member dangles
  for (const auto& s : events["scalars"]) scalars[s["tag"].get<std::string>()].push_back(s["value"].get<double>());
  REQUIRE(scalars["load_balancing_loss"].size() == 6);
  REQUIRE(scalars["z_loss"].size() == 6);
  for (int it = 1; it <= 6; ++it) {
    CHECK(scalars["load_balancing_loss"][it - 1] == Approx(every.at(it).first).epsilon(2e-6));
    CHECK(scalars["z_loss"][it - 1] == Approx(every.at(it).second).epsilon(2e-6));
  }
}

TEST_CASE("moe_per_layer_logging: each mixture layer's router losses in TensorBoard, their mean the line's; pp2 alike",
          "[unit]") {
  tessera::test::CliWorkspace w;
  // Layers 0, 2 and 3 are mixtures, layer 1 dense.
  const std::vector<std::string> model{"--set", "training.train_iters=3", "--set", "model.num_layers=4",
                                       "--set", "model.num_experts=4", "--set", "model.moe_layer_freq=[1,0,1,1]",
                                       "--set", "model.moe_aux_loss_coeff=0.01", "--set", "model.moe_z_loss_coeff=0.001",
                                       "--set", "model.moe_per_layer_logging=true"};
  const auto train = [&](const std::string& name, std::vector<std::string> launcher) {
    std::vector<std::string> args{"train", w.config, "--set", "checkpoint.save=" + (w.dir / ("s_" + name)), "--set",
                                  "logging.tensorboard_dir=" + (w.dir / ("tb_" + name))};
    args.insert(args.end(), model.begin(), model.end());
    std::string output;
    if (launcher.empty()) {
      const CliRun t = tessera_cli(args);
      INFO(t.output);
      REQUIRE(t.ok());
      output = t.output;
    } else {
      launcher.push_back(tessera::test::kTesseraBinary);
      launcher.insert(launcher.end(), args.begin(), args.end());
      launcher.insert(launcher.end(), {"--set", "parallel.pipeline_model_parallel_size=2"});
      int status = 0;
      output = tessera::test::run_command(launcher, &status, true);
      INFO(output);
      REQUIRE(status == 0);
    }
    CHECK(output.find("moe/") == std::string::npos);  // per-layer values are not on the line
    std::map<std::string, std::vector<double>> scalars;
    const nlohmann::json events = dump_events(w.dir / ("tb_" + name));
    for (const auto& s : events["scalars"]) scalars[s["tag"].get<std::string>()].push_back(s["value"].get<double>());
    return scalars;
  };
  auto one = train("one", {});
  for (const std::string loss : {"load_balancing_loss", "z_loss"}) {
    INFO(loss);
    CHECK(one.count("moe/" + loss + "_layer_1") == 0);  // the dense layer
    REQUIRE(one[loss].size() == 3);
    for (const int layer : {0, 2, 3}) REQUIRE(one["moe/" + loss + "_layer_" + std::to_string(layer)].size() == 3);
    for (std::size_t it = 0; it < 3; ++it) {
      const double mean = (one["moe/" + loss + "_layer_0"][it] + one["moe/" + loss + "_layer_2"][it] +
                           one["moe/" + loss + "_layer_3"][it]) / 3;
      CHECK(one[loss][it] == Approx(mean).epsilon(1e-6));
    }
    // The layers route differently: their values are not one number copied.
    CHECK(one["moe/" + loss + "_layer_0"][0] != one["moe/" + loss + "_layer_2"][0]);
  }
#ifdef TESSERA_MPIEXEC_PATH
  // Two pipeline stages (layers 0–1, 2–3): each layer's values as one process's.
  auto pp2 = train("pp2", {"/usr/bin/env", "OMP_NUM_THREADS=1", TESSERA_MPIEXEC_PATH, "--allow-run-as-root",
                           "--oversubscribe", "-np", "2"});
  for (const std::string loss : {"load_balancing_loss", "z_loss"})
    for (const int layer : {0, 2, 3}) {
      const std::string tag = "moe/" + loss + "_layer_" + std::to_string(layer);
      INFO(tag);
      REQUIRE(pp2[tag].size() == 3);
      for (std::size_t it = 0; it < 3; ++it) CHECK(pp2[tag][it] == Approx(one[tag][it]).epsilon(1e-5));
    }
#endif
}

TEST_CASE("a model with several loss terms writes each, and its validation", "[unit]") {
  tessera::test::TempDir dir;
  {
    tessera::TensorBoardWriter writer(dir.path);
    tessera::IterationLine line;
    line.iteration = 10;
    line.consumed_samples = 320;
    line.global_batch_size = 32;
    line.ms_per_iteration = 250;
    line.lr = 1e-4;
    line.grad_norm = 2.5;
    line.loss_scale = 65536;
    line.loss_parts = {{"lm loss", 7.5}, {"sop loss", 0.69}};
    tessera::write_iteration(writer, line);
    tessera::write_iteration_time(writer, 10, line.ms_per_iteration);
    tessera::write_validation(writer, 10, 320, 8.0, {{"lm loss", 7.3}, {"sop loss", 0.7}});
  }
  const nlohmann::json events = dump_events(dir.path.string());
  std::map<std::string, std::pair<std::int64_t, double>> by_tag;
  for (const auto& s : events["scalars"]) by_tag[s["tag"]] = {s["step"], s["value"]};
  CHECK(by_tag.count("lm loss") == 1);
  CHECK(by_tag["sop loss"].first == 10);
  CHECK(by_tag["sop loss"].second == Approx(0.69).epsilon(1e-6));
  CHECK(by_tag["sop loss vs samples"].first == 320);
  CHECK(by_tag["loss-scale"].second == 65536.0);
  CHECK(by_tag["iteration-time"].second == Approx(0.25));
  CHECK(by_tag["sop loss validation"].second == Approx(0.7).epsilon(1e-6));
  CHECK(by_tag["lm loss validation ppl"].second == Approx(std::exp(7.3)).epsilon(1e-6));
  CHECK(by_tag.count("sop loss validation ppl vs samples") == 1);
}

TEST_CASE("tensorboard_dir that cannot be made is a clear error before training", "[unit]") {
  tessera::test::CliWorkspace w;
  const std::string file = w.dir / "a_file";
  tessera::test::write_text(file, "x");
  const CliRun t = run_tessera("train " + w.config + " --set logging.tensorboard_dir=" + file + "/tb");
  INFO(t.output);
  CHECK(t.clean_error());
  CHECK(t.has("logging.tensorboard_dir"));
  CHECK(t.has(file + "/tb"));
  CHECK_FALSE(t.has("iteration        1/"));
}

TEST_CASE("tessera plot draws a run's loss and throughput to a PNG", "[unit]") {
  if (!gnuplot_here()) {
    WARN("gnuplot is not installed (apt-get install gnuplot-nox): tessera plot is not drawn here");
    return;
  }
  tessera::test::CliWorkspace w;
  const CliRun t = run_tessera("train " + w.config + " --set training.train_iters=8 --set training.eval_interval=4");
  INFO(t.output);
  REQUIRE(t.ok());
  const std::string log = w.dir / "run's log.txt";  // a quote and a space: no shell, gnuplot quoting
  tessera::test::write_text(log, t.output);
  const std::string png = w.dir / "curves.png";
  const CliRun p = tessera_cli({"plot", log, "-o", png});
  INFO(p.output);
  REQUIRE(p.ok());
  CHECK(p.has("8 iteration lines, 2 validation values"));
  REQUIRE(fs::exists(png));
  CHECK(fs::file_size(png) > 1000);
  const std::vector<unsigned char> bytes = tessera::test::read_bytes(png);
  const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  REQUIRE(bytes.size() > 8);
  CHECK(std::memcmp(bytes.data(), signature, 8) == 0);

  // Default output: the log's name with .png.
  const CliRun d = tessera_cli({"plot", log});
  INFO(d.output);
  CHECK(d.ok());
  CHECK(fs::exists(w.dir / "run's log.png"));
}

TEST_CASE("tessera plot: bad input is a clear error", "[unit]") {
  tessera::test::TempDir dir;
  const std::string empty = dir / "empty.log";
  tessera::test::write_text(empty, "[2026-01-01 00:00:00] config x.toml:\nnothing to see\n");
  const CliRun e = tessera_cli({"plot", empty, "-o", dir / "x.png"});
  INFO(e.output);
  CHECK(e.clean_error());
  CHECK(e.has(empty));
  CHECK(e.has("no iteration lines"));
  CHECK_FALSE(fs::exists(dir / "x.png"));

  const CliRun missing = tessera_cli({"plot", dir / "missing.log"});
  CHECK_FALSE(missing.ok());
  CHECK(missing.has("missing.log"));

  const std::string log = dir / "ok.log";
  tessera::test::write_text(log, " iteration        1/      10 | consumed samples:          4 | lm loss: 5.0E+00 | "
                                 "tokens/s: 100 |\n");
  const CliRun no_gnuplot = tessera_cli({"plot", log, "--gnuplot", dir / "no/gnuplot"});
  INFO(no_gnuplot.output);
  CHECK(no_gnuplot.clean_error());
  CHECK(no_gnuplot.has("apt-get install gnuplot-nox"));
  CHECK(no_gnuplot.has(dir / "no/gnuplot"));

  const CliRun bad_out = tessera_cli({"plot", log, "-o", dir / "no/such/folder/x.png"});
  INFO(bad_out.output);
  if (gnuplot_here()) {
    CHECK(bad_out.clean_error());
    CHECK(bad_out.has("does not exist"));
  }
}
