// The save folder and resumable checkpoints under bad luck: an unwritable folder is found before
// training, two runs cannot share a folder, what a failed save left is cleaned up, and a
// metadata.json that disagrees with itself or with its folder is refused on resume.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tessera_cli.hpp"

namespace fs = std::filesystem;
using tessera::test::CliRun;
using tessera::test::CliWorkspace;
using tessera::test::tessera_cli;

TEST_CASE("an unwritable checkpoint.save is an error before the first iteration", "[unit]") {
  CliWorkspace w;
  tessera::test::write_text(w.dir / "a_file", "not a folder");
  const CliRun r = tessera_cli({"train", w.config, "--set", "checkpoint.save=" + (w.dir / "a_file/save")});
  INFO(r.output);
  CHECK(r.clean_error());
  CHECK(r.has("cannot be written on rank 0"));
  CHECK(r.has("a_file/save"));
  CHECK_FALSE(r.has("iteration        1/"));
}

TEST_CASE("two runs cannot save into one folder", "[unit]") {
  CliWorkspace w;
  fs::create_directories(w.save());
  // Another run holds the folder (as this process holds the lock the trainer takes).
  const int fd = ::open((w.save() + "/.tessera-save.lock").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
  REQUIRE(::write(fd, "pid 1 on elsewhere", 18) == 18);
  const CliRun r = tessera_cli({"train", w.config});
  ::close(fd);
  INFO(r.output);
  CHECK(r.clean_error());
  CHECK(r.has("is in use by another run"));
  CHECK(r.has("pid 1 on elsewhere"));
  // Once released (the other run ended, however it ended), the folder is free again.
  CHECK(tessera_cli({"train", w.config}).ok());
}

TEST_CASE("a run that does not resume from checkpoint.save refuses to save over another run's files", "[unit]") {
  CliWorkspace w("save_interval = 2");
  REQUIRE(tessera_cli({"train", w.config, "--set", "training.train_iters=4"}).ok());
  const fs::path save = w.save();
  const std::string model_before = tessera::test::read_text(save / "model.safetensors");
  // The same command again (a fresh run, no load): refused before any work, nothing touched.
  const CliRun again = tessera_cli({"train", w.config, "--set", "training.train_iters=2"});
  INFO(again.output);
  CHECK(again.clean_error());
  CHECK(again.has("already holds a run's checkpoints up to iteration 4 and final weights (model.safetensors)"));
  CHECK(again.has("--set checkpoint.load=" + save.string()));
  CHECK_FALSE(again.has("iteration        1/"));
  CHECK(tessera::test::read_text(save / "latest_checkpointed_iteration.txt") == "4\n");
  CHECK(tessera::test::read_text(save / "model.safetensors") == model_before);
  // Resuming from another folder into it: refused too (the two runs' checkpoints would mix).
  const CliRun elsewhere = tessera_cli({"train", w.config, "--set", "training.train_iters=6", "--set",
                                        "checkpoint.load=" + (w.dir / "other")});
  CHECK(elsewhere.has("resumes from checkpoint.load"));
  CHECK(elsewhere.clean_error());
  // Resuming from it, or from one of its checkpoints, saves on into it.
  // (lr_decay_iters defaults to train_iters: kept at the checkpoint's 4, the schedule is the same.)
  const CliRun resumed = tessera_cli({"train", w.config, "--set", "training.train_iters=6", "--set",
                                      "optimizer.lr_decay_iters=4", "--set", "checkpoint.load=" + save.string()});
  INFO(resumed.output);
  CHECK(resumed.ok());
  CHECK(tessera::test::read_text(save / "latest_checkpointed_iteration.txt") == "6\n");
  CHECK(tessera_cli({"train", w.config, "--set", "training.train_iters=6", "--set", "optimizer.lr_decay_iters=4",
                     "--set", "checkpoint.load=" + (save / "iter_0000004").string() + "/"}).ok());
}

TEST_CASE("checkpoint.load = checkpoint.save: one command starts, resumes, and finishes a run", "[unit]") {
  // Megatron-LM's launch scripts pass --save and --load the same folder: README's commands do too.
  CliWorkspace w("save_interval = 2");
  const fs::path save = w.save();
  const std::vector<std::string> command{"train", w.config, "--set", "training.train_iters=4", "--set",
                                         "checkpoint.load=" + save.string()};
  const CliRun first = tessera_cli(command);
  INFO(first.output);
  REQUIRE(first.ok());
  CHECK(first.has("is checkpoint.save and holds no checkpoint yet: training starts from scratch"));
  CHECK(first.has("iteration        4/"));
  // A run that ended between its last checkpoint and its final weights: the same command writes
  // them from that checkpoint, training nothing.
  const std::string model = tessera::test::read_text(save / "model.safetensors");
  fs::remove(save / "model.safetensors");
  const CliRun again = tessera_cli(command);
  INFO(again.output);
  CHECK(again.ok());
  CHECK(again.has("iteration 4 = training.train_iters, nothing left to train"));
  CHECK(again.has("run summary: 0 iterations"));
  CHECK_FALSE(again.has("iteration        1/"));
  CHECK(tessera::test::read_text(save / "model.safetensors") == model);
  // Raising train_iters stretches the default lr_decay_iters: refused as Megatron-LM refuses it,
  // saying how to choose; with override_opt_param_scheduler it trains on from the checkpoint.
  // Lowering train_iters below the checkpoint is a mistake.
  const CliRun stretched = tessera_cli({"train", w.config, "--set", "training.train_iters=6", "--set",
                                        "checkpoint.load=" + save.string()});
  CHECK(stretched.clean_error());
  CHECK(stretched.has("lr decay: 16 samples (4 iterations) in the checkpoint, 24 samples (6 iterations) here"));
  CHECK(stretched.has("optimizer.override_opt_param_scheduler = true"));
  CHECK_FALSE(stretched.has("iteration        5/"));
  const CliRun on = tessera_cli({"train", w.config, "--set", "training.train_iters=6", "--set",
                                 "optimizer.override_opt_param_scheduler=true", "--set",
                                 "checkpoint.load=" + save.string()});
  CHECK(on.has("the schedule follows this config"));
  CHECK(on.has("training continues at iteration 5"));
  CHECK(on.has("iteration        6/"));
  const CliRun lower = tessera_cli({"train", w.config, "--set", "training.train_iters=4", "--set",
                                    "checkpoint.load=" + save.string()});
  CHECK(lower.clean_error());
  CHECK(lower.has("is at iteration 6, past training.train_iters = 4"));
  CHECK(lower.has("nothing left to train"));
  // A config's save overridden but not its load: the run says which folder it starts from.
  CliWorkspace other;
  const CliRun mixed = tessera_cli({"train", other.config, "--set", "training.train_iters=6", "--set",
                                    "checkpoint.load=" + save.string()});
  INFO(mixed.output);
  CHECK(mixed.ok());
  CHECK(mixed.has("is not checkpoint.save = " + other.save()));
  CHECK(mixed.has("this run starts from " + save.string()));
  // Only the save folder itself may be empty: another load folder that holds nothing is a typo.
  const CliRun typo = tessera_cli({"train", w.config, "--set", "checkpoint.save=" + (w.dir / "b"), "--set",
                                   "checkpoint.load=" + (w.dir / "nothing_here")});
  CHECK(typo.clean_error());
  CHECK(typo.has("nothing_here"));
  CHECK_FALSE(typo.has("iteration        1/"));
  // save_interval without a save folder: training refuses it, naming both keys; evaluation reads no
  // [checkpoint] key, so the same config evaluates.
  const CliRun no_save = tessera_cli({"train", w.config, "--set", "checkpoint.save=\"\"", "--set", "checkpoint.load=\"\""});
  CHECK(no_save.clean_error());
  CHECK(no_save.has("checkpoint.save_interval (2)"));
  CHECK(no_save.has("needs checkpoint.save"));
  // load = save on a folder with final weights and no checkpoint (save_interval = 0): resuming is
  // impossible and training again would save over them, so it is refused, naming the folder.
  CliWorkspace finals;
  const std::vector<std::string> again_finals{"train", finals.config, "--set", "training.train_iters=2", "--set",
                                              "checkpoint.load=" + finals.save()};
  REQUIRE(tessera_cli(again_finals).ok());
  const std::string weights = tessera::test::read_text(fs::path(finals.save()) / "model.safetensors");
  const CliRun refused = tessera_cli(again_finals);
  CHECK(refused.clean_error());
  CHECK(refused.has("holds a run's final weights (model.safetensors) but no resumable checkpoint"));
  CHECK_FALSE(refused.has("iteration        1/"));
  CHECK(tessera::test::read_text(fs::path(finals.save()) / "model.safetensors") == weights);
  const CliRun evaluated = tessera_cli({"evaluate", w.config, "--load", save.string(), "--split", "valid", "--set", "checkpoint.save=\"\""});
  INFO(evaluated.output);
  CHECK(evaluated.ok());
}

TEST_CASE("a damaged checkpoint file is refused at load, naming it, before any iteration", "[unit]") {
  CliWorkspace w("save_interval = 2");
  REQUIRE(tessera_cli({"train", w.config, "--set", "training.train_iters=2"}).ok());
  const fs::path file = fs::path(w.save()) / "iter_0000002/optimizer_tp0_pp0_dp0.safetensors";
  std::vector<unsigned char> bytes = tessera::test::read_bytes(file);
  for (std::size_t i = bytes.size() - 200; i < bytes.size() - 100; ++i) bytes[i] = static_cast<unsigned char>(i * 37);
  tessera::test::write_bytes(file, bytes);
  const CliRun r = tessera_cli({"train", w.config, "--set", "training.train_iters=4", "--set",
                                "optimizer.lr_decay_iters=2", "--set", "checkpoint.load=" + w.save()});
  INFO(r.output);
  CHECK(r.clean_error());
  CHECK(r.has("optimizer_tp0_pp0_dp0.safetensors: the data does not match the checksum"));
  CHECK_FALSE(r.has("iteration        3/"));
}

TEST_CASE("what a failed or killed save left behind is cleaned up at start", "[unit]") {
  CliWorkspace w("save_interval = 3");
  REQUIRE(tessera_cli({"train", w.config}).ok());
  const fs::path save = w.save();
  REQUIRE(fs::is_directory(save / "iter_0000003"));
  // A save killed between its two renames: the old folder moved aside, the new one never arrived.
  fs::rename(save / "iter_0000003", save / "iter_0000003.old");
  fs::create_directories(save / "iter_0000009.tmp");
  tessera::test::write_text(save / "iter_0000009.tmp/model_tp0_pp0.safetensors", "partial");
  tessera::test::write_text(save / "latest_checkpointed_iteration.txt.tmp", "9");
  const CliRun r = tessera_cli({"train", w.config, "--set", "training.train_iters=8", "--set",
                                "optimizer.lr_decay_iters=6", "--set",
                                "checkpoint.load=" + (save / "iter_0000003").string(), "--set",
                                "checkpoint.save_interval=0"});
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(r.has("put back"));
  CHECK(r.has("resumed from checkpoint"));
  CHECK(fs::is_directory(save / "iter_0000003"));
  CHECK_FALSE(fs::exists(save / "iter_0000003.old"));
  CHECK_FALSE(fs::exists(save / "iter_0000009.tmp"));
  CHECK_FALSE(fs::exists(save / "latest_checkpointed_iteration.txt.tmp"));
}

TEST_CASE("resume refuses a metadata.json that disagrees with itself or its folder", "[unit]") {
  CliWorkspace w("save_interval = 3");
  REQUIRE(tessera_cli({"train", w.config}).ok());
  const fs::path dir = fs::path(w.save()) / "iter_0000006", meta_path = dir / "metadata.json";
  const std::string original = tessera::test::read_text(meta_path);
  const auto resume_with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json meta = nlohmann::json::parse(original);
    edit(meta);
    tessera::test::write_text(meta_path, meta.dump(2));
    return tessera_cli({"train", w.config, "--set", "training.train_iters=9", "--set", "optimizer.lr_decay_iters=6",
                        "--set", "checkpoint.load=" + w.save(), "--set", "checkpoint.save=" + (w.dir / "save2")});
  };
  const auto check_refused = [&](const CliRun& r, const std::string& says) {
    INFO(r.output);
    CHECK(r.clean_error());
    CHECK(r.has("metadata.json"));
    CHECK(r.has(says));
  };
  check_refused(resume_with([](auto& m) {
                  m["iteration"] = 5, m["consumed_samples"] = 20, m["optimizer_steps"] = 5;
                  m["opt_param_scheduler"]["num_steps"] = 20;
                }),
                "does not match the folder name iter_0000006");
  check_refused(resume_with([](auto& m) { m["consumed_samples"] = 25; }), "consumed_samples 25 is not iteration 6");
  check_refused(resume_with([](auto& m) { m["optimizer_steps"] = 5; }),
                "optimizer_steps 5 is not iteration 6 − loss_scaler.skipped_iterations 0");
  check_refused(resume_with([](auto& m) {
                  m["loss_scaler"] = {{"skipped_iterations", 2}, {"scale", 1024.0}, {"growth_tracker", 0},
                                      {"hysteresis_tracker", 2}};
                }),
                "optimizer_steps 6 is not iteration 6 − loss_scaler.skipped_iterations 2");
  check_refused(resume_with([](auto& m) {
                  m["loss_scaler"] = {{"skipped_iterations", 0}, {"scale", -1.0}, {"growth_tracker", 0},
                                      {"hysteresis_tracker", 2}};
                }),
                "'loss_scaler.scale' is");
  check_refused(resume_with([](auto& m) { m["version"] = 2; }), "version 2");
  check_refused(resume_with([](auto& m) { m["format"] = "megatron"; }), "format is \"megatron\"");
  check_refused(resume_with([](auto& m) { m["layout"]["world_size"] = 2; }), "layout.world_size 2");
  check_refused(resume_with([](auto& m) { m.erase("seed"); }), "no 'seed'");
  check_refused(resume_with([](auto& m) { m["iteration"] = "6"; }), "'iteration' is string");
  check_refused(resume_with([](auto& m) { m["opt_param_scheduler"]["num_steps"] = 20; }),
                "'opt_param_scheduler.num_steps' 20 is not optimizer_steps 6 × global_batch_size 4");
  check_refused(resume_with([](auto& m) { m["opt_param_scheduler"]["wd_incr_style"] = "exponential"; }),
                "'opt_param_scheduler.wd_incr_style' is \"exponential\", not one of constant, linear, cosine");
  // An optimizer file from another iteration.
  tessera::test::write_text(meta_path, original);
  fs::copy_file(fs::path(w.save()) / "iter_0000003/optimizer_tp0_pp0_dp0.safetensors",
                dir / "optimizer_tp0_pp0_dp0.safetensors", fs::copy_options::overwrite_existing);
  const CliRun r = tessera_cli({"train", w.config, "--set", "training.train_iters=9", "--set",
                                "optimizer.lr_decay_iters=6", "--set", "checkpoint.load=" + w.save(), "--set",
                                "checkpoint.save=" + (w.dir / "save3")});
  INFO(r.output);
  CHECK(r.clean_error());
  CHECK(r.has("the optimizer state is at step 3"));
}

TEST_CASE("reshard refuses a dp over which the checkpoint's batch ramp does not divide", "[unit]") {
  // A ramp from 2 (micro batch 2, dp 1): at dp 2 its first batches would be half a microbatch per rank.
  CliWorkspace w("save_interval = 3");
  std::string text = tessera::test::read_text(w.config);
  const auto at = text.find("train_iters = 6\n");
  REQUIRE(at != std::string::npos);
  text.replace(at, 16, "train_samples = 24\nrampup_batch_size = [2, 2, 8]\n");
  const std::string config = w.dir / "ramp.toml";
  tessera::test::write_text(config, text);
  const CliRun trained = tessera_cli({"train", config});
  INFO(trained.output);
  REQUIRE(trained.ok());
  CHECK(trained.has("batch ramp (training.rampup_batch_size): global batch 2 growing by 2 to 4"));
  const CliRun r = tessera_cli({"checkpoint", "reshard", w.save() + "/iter_0000003", "--tp", "1", "--pp", "1", "--dp",
                                "2", w.dir / "resharded"});
  INFO(r.output);
  CHECK(r.clean_error());
  CHECK(r.has("rampup_batch_size [2, 2, 8]) does not divide over --dp 2"));
}
