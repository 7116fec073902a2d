// Loading part of a resumable checkpoint, as Megatron-LM's --finetune (the weights only: a new run
// from iteration 1) and --no-load-optim (the weights and the iteration, a fresh optimizer): what is
// taken, what is not, what may differ from the checkpoint's run, and what is refused; and saving
// without the optimizer (--no-save-optim).
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/logging.hpp"
#include "tessera/nn/parameter.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/checkpoint_reshard.hpp"
#include "tessera/train/grad_buckets.hpp"
#include "tessera/train/saved_model.hpp"
#include "tessera/train/trainer.hpp"
#include "test_util.hpp"
#include "training_corpus.hpp"

using namespace tessera;

namespace {

Config run_config(std::int64_t train_iters, const std::vector<std::string>& keys) {
  return Config::from_string(small_gpt_run(2, "cpu", train_iters), "run.toml", keys);
}

// Every parameter equals the tensor of that name in a checkpoint's model file.
bool holds_weights_of(Trainer& t, const std::string& model_file) {
  const SafetensorsFile f = load_safetensors(model_file);
  std::vector<Parameter*> params;
  t.model().collect_parameters(params);
  for (const Parameter* p : params) {
    const Tensor& w = f.tensors.at(p->name);
    for (std::int64_t i = 0; i < w.numel(); ++i)
      if (w.data<float>()[i] != p->value.data<float>()[i]) return false;
  }
  return true;
}

bool all_zero(const NamedTensors& state) {
  for (const auto& [name, t] : state)
    if (t.dtype() == DType::f32)
      for (std::int64_t i = 0; i < t.numel(); ++i)
        if (t.data<float>()[i] != 0.0f) return false;
  return true;
}

}  // namespace

TEST_CASE("checkpoint.finetune and no_load_optim take a checkpoint's weights, as Megatron-LM's flags", "[unit]") {
  log_state().level = LogLevel::warn;
  test::TempDir dir;
  const std::string first = dir / "pretrain";
  { Trainer t(run_config(4, {"checkpoint.save=\"" + first + "\"", "checkpoint.save_interval=4"})); t.train(); }
  const std::string ckpt = first + "/iter_0000004", model_file = ckpt + "/model_tp0_pp0.safetensors";

  SECTION("finetune: iteration 1, fresh optimizer and schedule; seed, batch, optimizer and length may differ") {
    Trainer t(run_config(3, {"checkpoint.load=\"" + first + "\"", "checkpoint.finetune=true",
                             "checkpoint.save=\"" + (dir / "tuned") + "\"", "checkpoint.save_interval=3",
                             "training.seed=99", "training.global_batch_size=2", "optimizer.plugin=\"distributed_adam\"",
                             "optimizer.lr_warmup_iters=1"}));
    CHECK(holds_weights_of(t, model_file));
    CHECK(all_zero(t.optimizer().state()));
    CHECK(t.learning_rate(1) == 0.0);  // the new run's warmup, from its start
    const TrainingRecord r = t.train();
    CHECK(r.losses.size() == 3);  // iterations 1–3, fewer than the checkpoint's 4
    CHECK(std::filesystem::exists(dir / "tuned/iter_0000003/metadata.json"));
  }
  SECTION("no_load_optim: the iteration goes on, the optimizer starts afresh (another plugin allowed)") {
    const std::string fresh = dir / "fresh";
    Trainer t(run_config(6, {"checkpoint.load=\"" + first + "\"", "checkpoint.no_load_optim=true",
                             "optimizer.plugin=\"distributed_adam\"", "optimizer.lr_decay_iters=4",
                             "checkpoint.save=\"" + fresh + "\"", "checkpoint.save_interval=6"}));
    CHECK(holds_weights_of(t, model_file));
    CHECK(all_zero(t.optimizer().state()));
    const TrainingRecord r = t.train();
    CHECK(r.losses.size() == 2);  // iterations 5 and 6
    // The schedule is the run's, checked as on any resume: a stretched decay is refused.
    CHECK_THAT(message_of<ConfigError>([&] {
                 Trainer u(run_config(6, {"checkpoint.load=\"" + first + "\"", "checkpoint.no_load_optim=true"}));
               }),
               Catch::Contains("lr decay"));
    // Its checkpoint records that the optimizer's state began at step 4 (its files count 2 steps), so
    // a plain resume of it reads them.
    const std::string meta = test::read_text(fresh + "/iter_0000006/metadata.json");
    CHECK(meta.find("\"optimizer_state_offset\": 4") != std::string::npos);
    Trainer again(run_config(8, {"checkpoint.load=\"" + fresh + "\"", "optimizer.plugin=\"distributed_adam\"",
                                 "optimizer.lr_decay_iters=4"}));
    CHECK(again.train().losses.size() == 2);  // iterations 7 and 8
  }
  SECTION("no_save_optim: checkpoints without optimizer files, which no_load_optim resumes and reshard keeps so") {
    const std::string light = dir / "light";
    {
      Trainer t(run_config(4, {"checkpoint.save=\"" + light + "\"", "checkpoint.save_interval=2",
                               "checkpoint.no_save_optim=true"}));
      t.train();
    }
    const std::string light_ckpt = light + "/iter_0000004";
    CHECK(std::filesystem::exists(light_ckpt + "/model_tp0_pp0.safetensors"));
    CHECK(!std::filesystem::exists(light_ckpt + "/optimizer_tp0_pp0_dp0.safetensors"));
    CHECK(test::read_text(light_ckpt + "/metadata.json").find("\"optimizer_saved\": false") != std::string::npos);
    // The same weights as the run that saved its optimizer (no_save_optim changes nothing else).
    CHECK(holds_weights_of(*std::make_unique<Trainer>(run_config(4, {"checkpoint.load=\"" + light + "\"",
                                                                     "checkpoint.no_load_optim=true"})),
                           model_file));
    const std::string msg = message_of<ConfigError>([&] { Trainer t(run_config(6, {"checkpoint.load=\"" + light + "\"",
                                                                                 "optimizer.lr_decay_iters=4"})); });
    CHECK_THAT(msg, Catch::Contains(light_ckpt) && Catch::Contains("without its optimizer state") &&
                        Catch::Contains("checkpoint.no_load_optim = true"));
    Trainer resumed(run_config(6, {"checkpoint.load=\"" + light + "\"", "checkpoint.no_load_optim=true",
                                   "optimizer.lr_decay_iters=4"}));
    CHECK(resumed.train().losses.size() == 2);  // iterations 5 and 6
    // Resharded (here to the same layout): weights only again.
    const CheckpointFolder source = open_checkpoint(light, "the test's checkpoint");
    ReshardLayout same;
    same.bucket_size = kDefaultGradBucketSize;
    const ReshardResult r = reshard_checkpoint(source, open_saved_model(source.dir).config, same, {}, dir / "light2");
    CHECK(!r.meta.optimizer_saved);
    CHECK(std::filesystem::exists(r.checkpoint / "model_tp0_pp0.safetensors"));
    CHECK(!std::filesystem::exists(r.checkpoint / "optimizer_tp0_pp0_dp0.safetensors"));
    Trainer from_reshard(run_config(6, {"checkpoint.load=\"" + (dir / "light2") + "\"",
                                        "checkpoint.no_load_optim=true", "optimizer.lr_decay_iters=4"}));
    CHECK(holds_weights_of(from_reshard, model_file));
  }
  SECTION("a plain resume still refuses another optimizer plugin") {
    CHECK_THAT(message_of<ConfigError>([&] {
                 Trainer t(run_config(6, {"checkpoint.load=\"" + first + "\"", "optimizer.plugin=\"distributed_adam\"",
                                          "optimizer.lr_decay_iters=4"}));
               }),
               Catch::Contains("holds the state of optimizer 'adam'"));
  }
  SECTION("refused: fine-tuning into the source's own folder, and either key without load") {
    CHECK_THAT(message_of<ConfigError>([&] {
                 Trainer t(run_config(3, {"checkpoint.load=\"" + first + "\"", "checkpoint.save=\"" + first + "\"",
                                          "checkpoint.finetune=true"}));
               }),
               Catch::Contains("checkpoint.finetune = true") && Catch::Contains("another folder"));
    for (const char* key : {"finetune", "no_load_optim"})
      CHECK_THAT(message_of<ConfigError>([&] {
                   Trainer t(run_config(3, {fmt::format("checkpoint.{}=true", key)}));
                 }),
                 Catch::Contains(fmt::format("checkpoint.{} = true", key)) && Catch::Contains("needs checkpoint.load"));
  }
}
