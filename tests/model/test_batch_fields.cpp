// Named batch fields: a Batch's get/set, the check of a model's consumed fields against a data
// plugin's produced ones, and the trainer running it at start (tests/model/synthetic_data_plugin.cpp
// declares the fields its keys ask for).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "expect_error.hpp"
#include "tessera/batch.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/train/components.hpp"
#include "tessera/train/trainer.hpp"

using namespace tessera;

namespace {

const FieldSpecs kGpt{{"tokens", DType::i32, {8}}, {"labels", DType::i32, {8}}, {"loss_mask", DType::f32, {8}}};

std::string config_text(const std::string& data_keys) {
  return fmt::format(R"(
[model]
plugin = "gpt"
num_layers = 1
hidden_size = 16
num_attention_heads = 2
seq_length = 8
[tokenizer]
plugin = "byte"
[data]
plugin = "synthetic"
{}
[training]
micro_batch_size = 2
global_batch_size = 4
train_iters = 2
num_threads = 1
[optimizer]
plugin = "adam"
lr = 1e-3
)",
                     data_keys);
}

}  // namespace

TEST_CASE("a batch is a set of named tensors", "[unit]") {
  Batch b;
  b.set("tokens", Tensor::zeros({2, 8}, DType::i32));
  b.set("loss_mask", Tensor::full({2, 8}, 1.0f));
  CHECK(b.has("tokens"));
  CHECK(!b.has("labels"));
  CHECK(b.names() == std::vector<std::string>{"tokens", "loss_mask"});
  b.set("tokens", Tensor::zeros({2, 4}, DType::i32));  // replaces
  CHECK(b.get("tokens").shape() == Shape{2, 4});
  CHECK(b.names().size() == 2);
  const std::string msg = message_of<Error>([&] { (void)b.get("labels"); });
  CHECK(msg.find("no field 'labels'") != std::string::npos);
  CHECK(msg.find("tokens, loss_mask") != std::string::npos);  // what there is
}

TEST_CASE("consumed batch fields must be produced with the same dtype and per-sample shape", "[unit]") {
  const std::string model = "model plugin 'm'", data = "data plugin 'd'";
  FieldSpecs extra = kGpt;
  extra.push_back({"token_types", DType::i32, {8}});
  CHECK_NOTHROW(check_batch_fields(kGpt, model, extra, data));  // fields nobody reads are fine

  FieldSpecs missing{kGpt[0], kGpt[2]};
  std::string msg = message_of<ConfigError>([&] { check_batch_fields(kGpt, model, missing, data); });
  CHECK(msg.find(model) != std::string::npos);
  CHECK(msg.find(data) != std::string::npos);
  CHECK(msg.find("labels i32[8]") != std::string::npos);
  CHECK(msg.find("does not produce") != std::string::npos);

  FieldSpecs dtype = kGpt;
  dtype[2].dtype = DType::i32;
  msg = message_of<ConfigError>([&] { check_batch_fields(kGpt, model, dtype, data); });
  CHECK(msg.find("loss_mask f32[8]") != std::string::npos);
  CHECK(msg.find("loss_mask i32[8]") != std::string::npos);

  FieldSpecs shape = kGpt;
  shape[0].sample_shape = {16};
  msg = message_of<ConfigError>([&] { check_batch_fields(kGpt, model, shape, data); });
  CHECK(msg.find("tokens i32[16]") != std::string::npos);
  CHECK(msg.find(model) != std::string::npos);
  CHECK(msg.find(data) != std::string::npos);
}

TEST_CASE("an optional field is read when produced, and then checked as any other", "[unit]") {
  const std::string model = "model plugin 'm'", data = "data plugin 'd'";
  FieldSpecs reads = kGpt;
  reads.push_back({"document_start", DType::i32, {8}, /*optional=*/true});
  CHECK_NOTHROW(check_batch_fields(reads, model, kGpt, data));  // absent: the model goes without
  FieldSpecs produced = kGpt;
  produced.push_back({"document_start", DType::i32, {8}});
  CHECK_NOTHROW(check_batch_fields(reads, model, produced, data));
  produced.back().sample_shape = {9};
  const std::string msg = message_of<ConfigError>([&] { check_batch_fields(reads, model, produced, data); });
  CHECK(msg.find("document_start i32[9]") != std::string::npos);
  // What a model reads only when present is left out of its example batch (benchmarks, plans).
  const Batch example = [] {
    Config c = Config::from_string(config_text(""));
    return build_model(c, 256, 1)->example_batch(2, 256, 3);
  }();
  CHECK(example.names() == std::vector<std::string>{"tokens", "labels", "loss_mask"});
}

TEST_CASE("the trainer checks the model's batch fields against the data plugin's at start", "[unit]") {
  log_state().level = LogLevel::error;
  // An extra field (BERT-style token types) is carried along and ignored by GPT.
  Trainer ok(Config::from_string(config_text("token_types = true"), "ok.toml"));
  const TrainingRecord rec = ok.train();
  REQUIRE(rec.losses.size() == 2);
  CHECK(std::isfinite(rec.losses.back()));

  std::string msg =
      message_of<ConfigError>([] { Trainer(Config::from_string(config_text("labels = false"), "a.toml")); });
  CHECK(msg.find("model plugin 'gpt'") != std::string::npos);
  CHECK(msg.find("data plugin 'synthetic'") != std::string::npos);
  CHECK(msg.find("labels i32[8]") != std::string::npos);
  msg = message_of<ConfigError>(
      [] { Trainer(Config::from_string(config_text("loss_mask_dtype = \"i32\""), "b.toml")); });
  CHECK(msg.find("loss_mask f32[8]") != std::string::npos);
  CHECK(msg.find("loss_mask i32[8]") != std::string::npos);
}
