// `tessera plan` through the binary: the GPT-3 175B layout on 1,024 ranks (nothing allocated), the
// JSON form, and sizes a run would refuse refused with `tessera train`'s own messages.

#include <fstream>
#include <map>
#include <sstream>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tessera_cli.hpp"

using tessera::test::TempDir;
namespace test = tessera::test;

namespace {

const std::string kTessera = tessera::test::kTesseraBinary;
const std::string k175b = TESSERA_SOURCE_DIR "/configs/gpt/gpt3-175b.toml";

using Run = tessera::test::CliRun;
using tessera::test::run_tessera;

// The error a command printed, without the log prefix and the plugin tag ("model plugin 'gpt': "
// for the model, "model_plan plugin 'gpt': " for its plan: the message after it is shared code).
std::string error_of(const Run& r) {
  const auto at = r.output.find("ERROR] ");
  REQUIRE(at != std::string::npos);
  std::string e = r.output.substr(at + 7);
  e = e.substr(0, e.find('\n'));
  for (const std::string tag : {"model plugin 'gpt': ", "model_plan plugin 'gpt': "})
    if (e.rfind(tag, 0) == 0) e = e.substr(tag.size());
  return e;
}

// A small GPT whose every size error comes before its data is read.
constexpr const char* kTinyConfig = R"(
[model]
plugin = "gpt"
num_layers = 2
hidden_size = 32
num_attention_heads = 4
seq_length = 16
[tokenizer]
plugin = "byte"
[data]
plugin = "gpt_indexed"
data_path = "not needed: every error comes before the data"
[training]
micro_batch_size = 2
global_batch_size = 8
)";

}  // namespace

TEST_CASE("plan of GPT-3 175B on 1,024 ranks", "[unit]") {
  const Run text = run_tessera(fmt::format("plan {} --ranks 1024 --vocab-size 50257", k175b));
  INFO(text.output);
  REQUIRE(text.exited_with(0));
  CHECK_THAT(text.output, Catch::Contains("174,615,846,912 parameters in all"));
  CHECK_THAT(text.output, Catch::Contains("world 1024 = tp 8 × dp 8 × pp 16"));
  CHECK_THAT(text.output, Catch::Contains("global 1536 = micro 1 × dp 8 × 192 microbatches"));
  CHECK_THAT(text.output, Catch::Contains("7.81% of the ideal time, 7.25% of the iteration"));

  const Run json = run_tessera(fmt::format("plan {} --ranks 1024 --vocab-size 50257 --json", k175b));
  REQUIRE(json.exited_with(0));
  const auto j = nlohmann::json::parse(json.output);
  CHECK(j["dp"] == 8);
  CHECK(j["vocab_size"] == 50257);
  REQUIRE(j["stages"].size() == 16);
  // 1F1B holds min(p − s, m) microbatches on stage s.
  for (int s = 0; s < 16; ++s) CHECK(j["stages"][s]["peak_passes_held"] == 16 - s);
  // A middle stage: 6 layers of 12·h²/8 + (4h + 13h/8 … ) elements — the tp shards of 12 matrices.
  const std::int64_t h = 12288, layer = 2 * h + h / 8 * h + h / 8 + 2 * (h / 8) * h + 2 * h / 8 + h * (h / 8) + h +
                                        2 * h + 4 * h / 8 * h + 4 * h / 8 + h * 4 * h / 8 + h;
  CHECK(j["stages"][5]["parameters"] == 6 * layer);
  CHECK(j["stages"][5]["optimizer_state"] == 12 * layer);
  CHECK(j["flops_per_iteration"].get<double>() > 3.38e18);
  CHECK(j["flops_per_iteration"].get<double>() < 3.39e18);

  // Interleaving: the schedule plugin's own step list decides what is held.
  const Run v2 = run_tessera(fmt::format("plan {} --ranks 1024 --vocab-size 50257 --json --set "
                                         "parallel.virtual_pipeline_model_parallel_size=2 --set schedule.plugin=interleaved",
                                         k175b));
  INFO(v2.output);
  REQUIRE(v2.exited_with(0));
  const auto j2 = nlohmann::json::parse(v2.output);
  REQUIRE(j2["stages"][0]["chunks"].size() == 2);
  CHECK(j2["stages"][0]["chunks"][1]["contents"] == "layers 48–50");
  // Stage s warms up with (p − s − 1)·2 + (v − 1)·p forward passes, then holds one more.
  CHECK(j2["stages"][0]["peak_passes_held"] == 15 * 2 + 16 + 1);
  CHECK(j2["bubble_of_ideal"].get<double>() == Approx(15.0 / (2 * 192)));
}

TEST_CASE("plan refuses what train refuses, with the same message", "[unit]") {
  TempDir dir;
  const std::string config = dir / "run.toml";
  std::ofstream(config) << kTinyConfig;
  for (const std::string set : {"parallel.tensor_model_parallel_size=2", "training.global_batch_size=7",
                                "model.num_query_groups=3"}) {
    INFO(set);
    const Run train = run_tessera(fmt::format("train {} --set {}", config, set));
    const Run plan = run_tessera(fmt::format("plan {} --ranks 1 --set {}", config, set));
    REQUIRE(train.exited_with(1));
    REQUIRE(plan.exited_with(1));
    CHECK(error_of(plan) == error_of(train));
  }
  // Sequence parallelism: all-gathers and reduce-scatters over tp instead of activation all-reduces.
  const Run sp = run_tessera(fmt::format("plan {} --ranks 2 --set parallel.tensor_model_parallel_size=2 "
                                         "--set parallel.sequence_parallel=true", config));
  CHECK(sp.exited_with(0));
  CHECK_THAT(sp.output, Catch::Contains("reduce_scatter") && Catch::Contains("all_gather"));
  // A misspelt key is an error too (train finds it after building the data, so not compared here).
  const Run typo = run_tessera(fmt::format("plan {} --ranks 1 --set model.num_layer=3", config));
  CHECK(typo.exited_with(1));
  CHECK_THAT(typo.output, Catch::Contains("unknown key 'model.num_layer'"));
  // A virtual pipeline picks the interleaved schedule; 1f1b refuses chunks; m must be a multiple of pp.
  const std::string v2_args = fmt::format("plan {} --ranks 2 --set model.num_layers=4 --set "
                                          "parallel.pipeline_model_parallel_size=2 --set parallel.virtual_pipeline_model_parallel_size=2",
                                          config);
  const Run v2 = run_tessera(v2_args);
  CHECK(v2.exited_with(0));
  CHECK_THAT(v2.output, Catch::Contains("interleaved"));
  const Run v2_1f1b = run_tessera(v2_args + " --set schedule.plugin=1f1b");
  CHECK(v2_1f1b.exited_with(1));
  CHECK_THAT(v2_1f1b.output, Catch::Contains("use [schedule] plugin = \"interleaved\""));
  const Run odd = run_tessera(fmt::format("plan {} --ranks 2 --set model.num_layers=4 --set "
                                          "parallel.pipeline_model_parallel_size=2 --set parallel.virtual_pipeline_model_parallel_size=2 --set schedule.plugin=interleaved "
                                          "--set training.global_batch_size=6",
                                          config));
  CHECK(odd.exited_with(1));
  CHECK_THAT(odd.output, Catch::Contains("to be a multiple of parallel.pipeline_model_parallel_size (2)"));
  // Without the tokenizer's files the plan says how to go on.
  const Run bpe = run_tessera(fmt::format("plan {} --ranks 1024", k175b));
  CHECK(bpe.exited_with(1));
  CHECK_THAT(bpe.output, Catch::Contains("--vocab-size"));
  CHECK(run_tessera(fmt::format("plan {} --ranks 0", config)).exited_with(105));
}

TEST_CASE("context parallelism: the plan counts a rank's T/cp tokens, and bad sizes are clear errors", "[unit]") {
  TempDir dir;
  const std::string config = dir / "run.toml";
  std::ofstream(config) << kTinyConfig;
  const Run one = run_tessera(fmt::format("plan {} --ranks 1 --json", config));
  const Run cp2 = run_tessera(fmt::format("plan {} --ranks 2 --json --set parallel.context_parallel_size=2", config));
  INFO(cp2.output);
  REQUIRE(one.exited_with(0));
  REQUIRE(cp2.exited_with(0));
  const auto j1 = nlohmann::json::parse(one.output), j2 = nlohmann::json::parse(cp2.output);
  CHECK(j2["cp"] == 2);
  CHECK(j2["dp"] == 1);
  // The same parameters; activations of half the tokens (every saved tensor is per token, or per
  // token and head: attention's log-sum-exp).
  CHECK(j2["stages"][0]["parameters"] == j1["stages"][0]["parameters"]);
  CHECK(2 * j2["stages"][0]["activation_elements"].get<std::int64_t>() ==
        j1["stages"][0]["activation_elements"].get<std::int64_t>());
  CHECK_THAT(run_tessera(fmt::format("plan {} --ranks 2 --set parallel.context_parallel_size=2", config)).output,
             Catch::Contains("tp 1 × cp 2 × dp 1") && Catch::Contains("keys and values of the whole sequences"));
  // The cp traffic, counted by hand: each of the 2 layers gathers the whole sequences' [K | V]
  // (micro 2 × 16 tokens × 2·4 heads·8 channels = 2048 elements) in forward and again in backward,
  // and reduce-scatters their gradient once, for each of the 4 microbatches.
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> cp_ops;
  for (const auto& t : j2["stages"][0]["traffic"])
    if (t["group"] == "cp" && t["op"] != "all_reduce") cp_ops[t["op"]] = {t["calls"], t["elements"]};
  CHECK(cp_ops["all_gather"] == std::pair<std::int64_t, std::int64_t>{16, 16 * 2048});
  CHECK(cp_ops["reduce_scatter"] == std::pair<std::int64_t, std::int64_t>{8, 8 * 2048});
  // The bad sizes train refuses too (the messages are the shared readers').
  const auto error = [&](const std::string& sets, int ranks = 2) {
    const Run r = run_tessera(fmt::format("plan {} --ranks {} {}", config, ranks, sets));
    CHECK(r.exited_with(1));
    return r.output;
  };
  CHECK_THAT(error("--set parallel.context_parallel_size=3", 3),
             Catch::Contains("model.seq_length (16)") && Catch::Contains("multiple of 2 × parallel.context_parallel_size (3)"));
  CHECK_THAT(error("--set parallel.context_parallel_size=2 --set parallel.tensor_model_parallel_size=4 --set "
                   "parallel.sequence_parallel=true --set model.seq_length=20", 8),
             Catch::Contains("model.seq_length (20)") && Catch::Contains("/ parallel.context_parallel_size (2) must be a "
                                                                          "multiple of parallel.tensor_model_parallel_size (4)"));
  CHECK_THAT(error("--set parallel.context_parallel_size=2", 3),
             Catch::Contains("× context_parallel_size (2) = 2: the data-parallel size would not be a whole number"));
  CHECK_THAT(error("--set parallel.context_parallel_size=2 --set model.num_experts=4"),
             Catch::Contains("parallel.context_parallel_size = 2 with model.num_experts") &&
                 Catch::Contains("mixture-of-experts layers is not built"));
  CHECK_THAT(error("--set parallel.context_parallel_size=2 --set model.mtp_num_layers=1"),
             Catch::Contains("with model.mtp_num_layers") && Catch::Contains("multi-token prediction is not built"));
  CHECK_THAT(error("--set parallel.context_parallel_size=2 --set parallel.cp_comm_type=p2p"),
             Catch::Contains("cp_comm_type") && Catch::Contains("all_gather"));
  CHECK_THAT(error("--set parallel.context_parallel_size=2 --vocab-size 100 --set model.plugin=bert"),
             Catch::Contains("the bert model does not support context parallelism"));
}

TEST_CASE("a T5 pipeline split rank out of range, or missing, is a clear error", "[unit]") {
  // plan reads [parallel] and [model] with the code train uses (train/components.cpp, the t5 plugin's
  // options; test_t5_reference builds the model with these refusals), on any number of ranks.
  TempDir dir;
  const std::string config = dir / "t5.toml";
  std::ofstream(config) << fmt::format(R"(
[model]
plugin = "t5"
num_layers = 2
hidden_size = 32
num_attention_heads = 4
seq_length = 16
decoder_seq_length = 8
[tokenizer]
plugin = "bert_wordpiece"
vocab_file = "{}/share/bert/vocab.txt"
vocab_extra_ids = 100
[data]
plugin = "t5_indexed"
data_path = "not needed: every error comes before the data"
[training]
micro_batch_size = 2
global_batch_size = 8
)", TESSERA_BINARY_DIR);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--set parallel.pipeline_model_parallel_split_rank=2", "pipeline_model_parallel_split_rank (2)"},
      {"--set parallel.pipeline_model_parallel_split_rank=0", "needs parallel.pipeline_model_parallel_split_rank"}};
  for (const auto& [set, message] : cases) {
    INFO(set);
    const Run plan = run_tessera(
        fmt::format("plan --ranks 2 {} --set parallel.pipeline_model_parallel_size=2 {}", config, set));
    INFO(plan.output);
    CHECK(plan.exited_with(1));
    CHECK_THAT(plan.output, Catch::Contains(message));
  }
  // In range, the plan has an encoder stage and a decoder stage.
  const Run ok = run_tessera(fmt::format("plan --ranks 2 {} --set parallel.pipeline_model_parallel_size=2 "
                                         "--set parallel.pipeline_model_parallel_split_rank=1", config));
  INFO(ok.output);
  CHECK(ok.exited_with(0));
  CHECK_THAT(ok.output, Catch::Contains("encoder layers 0–1, embeddings") &&
                            Catch::Contains("decoder layers 0–1, embeddings, LM head"));
}

TEST_CASE("every config shipped in configs/ plans, with the published sizes where there are some", "[unit]") {
  // (config, ranks, the tokenizer's vocabulary size, the parameter count the plan must print or "").
  const std::vector<std::tuple<std::string, int, int, std::string>> configs = {
      {"gpt/tiny.toml", 1, 50257, ""},
      {"gpt/gpt2-124m.toml", 1, 50257, "124,475,904 parameters"},  // GPT-2 small's 124,439,808 + 47 padded rows
      {"gpt/gpt3-175b.toml", 1024, 50257, "174,615,846,912 parameters"},
      {"gpt/code-tiny.toml", 1, 50275, ""},
      {"gpt/starcoder-15b.toml", 512, 49152, "15,517,456,384 parameters"},
      {"gpt/santacoder-1b.toml", 96, 49156, "1,124,886,528 parameters"},
      {"gpt/llama-tiny.toml", 1, 50257, ""},
      {"gpt/llama2-7b.toml", 4, 32000, "6,738,415,616 parameters"},  // Llama-2-7B's count
      {"gpt/mixtral-tiny.toml", 1, 50257, ""},
      {"gpt/deepseek-moe-tiny.toml", 1, 50257, ""},
      {"gpt/mixtral-8x7b.toml", 64, 32000, "46,702,792,704 parameters"},  // Mixtral 8x7B's count
      // Qwen3-30B-A3B's: 2·V·C + L·(attention C·H·D + 2·C·G·D + H·D·C + 2·D, norms 2·C, router E·C,
      // experts 3·E·C·F) + C with V 151936, C 2048, L 48, H 32, G 4, D 128, E 128, F 768.
      {"gpt/qwen3-30b-a3b.toml", 64, 151936, "30,532,122,624 parameters"},
      {"gpt/gpt-oss-tiny.toml", 1, 50257, ""},
      // gpt-oss-20b's: 2·V·C + L·(q, k, v, o with biases H·D·C + H·D + 2·(G·D·C + G·D) + C·H·D + C,
      // sinks H, norms 2·C, router E·C + E, experts E·(C·2F + 2F + F·C + C)) + C with V 201088,
      // C 2880, L 24, H 64, G 8, D 64, E 32, F 2880.
      {"gpt/gpt-oss-20b.toml", 64, 201088, "20,914,757,184 parameters"},
      {"bert/tiny.toml", 1, 30522, ""},
      {"bert/bert-base.toml", 1, 30522, ""},
      {"bert/bert-345m.toml", 1, 30522, ""},
      {"t5/tiny.toml", 1, 30624, ""},
      {"t5/t5-small.toml", 1, 30624, ""},
      {"t5/t5-220m.toml", 1, 30624, "222,495,744 parameters"},
  };
  for (const auto& [config, ranks, vocab, parameters] : configs) {
    INFO(config);
    const Run plan = run_tessera(fmt::format("plan {}/configs/{} --ranks {} --vocab-size {}", TESSERA_SOURCE_DIR, config,
                                             ranks, vocab));
    INFO(plan.output);
    CHECK(plan.exited_with(0));
    if (!parameters.empty()) CHECK_THAT(plan.output, Catch::Contains(parameters));
  }
}

TEST_CASE("expert parallelism: the plan splits the experts per rank, and bad sizes are clear errors", "[unit]") {
  const std::string mixtral = TESSERA_SOURCE_DIR "/configs/gpt/mixtral-8x7b.toml";
  const std::string tiny = TESSERA_SOURCE_DIR "/configs/gpt/mixtral-tiny.toml";  // 8 experts
  // Mixtral 8x7B on 64 ranks with ep 8: the model's count is whole, each rank holds one expert per
  // layer (a fraction of what ep 1 holds), and the plan says what it leaves out.
  const Run ep8 = run_tessera(fmt::format("plan {} --ranks 64 --vocab-size 32000 --json", mixtral));
  const Run ep1 = run_tessera(
      fmt::format("plan {} --ranks 64 --vocab-size 32000 --json --set parallel.expert_model_parallel_size=1", mixtral));
  INFO(ep8.output);
  REQUIRE(ep8.exited_with(0));
  REQUIRE(ep1.exited_with(0));
  const auto j8 = nlohmann::json::parse(ep8.output), j1 = nlohmann::json::parse(ep1.output);
  CHECK(j8["total_parameters"] == 46'702'792'704LL);
  CHECK(j1["total_parameters"] == 46'702'792'704LL);
  const std::int64_t per_rank8 = j8["stages"][0]["parameters"], per_rank1 = j1["stages"][0]["parameters"];
  // Stage 0 holds 8 layers: 7 of each layer's 8 experts (3·4096·7168 elements each, tp 2) fewer.
  CHECK(per_rank1 - per_rank8 == 8LL * 7 * 3 * 4096 * 14336 / 2);
  CHECK_THAT(run_tessera(fmt::format("plan {} --ranks 64 --vocab-size 32000", mixtral)).output,
             Catch::Contains("parallel.expert_model_parallel_size = 8: each rank holds"));

  const Run not_dividing_dp = run_tessera(fmt::format("plan {} --ranks 6 --vocab-size 50257 --set parallel.expert_model_parallel_size=4", tiny));
  CHECK_THAT(not_dividing_dp.output, Catch::Contains("expert_model_parallel_size 4 must divide the data-parallel size 6"));
  const Run not_dividing_experts =
      run_tessera(fmt::format("plan {} --ranks 6 --vocab-size 50257 --set parallel.expert_model_parallel_size=3 --set "
                              "training.global_batch_size=48",
                              tiny));
  CHECK_THAT(not_dividing_experts.output,
             Catch::Contains("model.num_experts 8 (in ") &&
                 Catch::Contains("must be a multiple of parallel.expert_model_parallel_size (3)"));
  const Run dense = run_tessera(fmt::format("plan {}/configs/gpt/tiny.toml --ranks 2 --vocab-size 50257 --set parallel.expert_model_parallel_size=2",
                                            TESSERA_SOURCE_DIR));
  CHECK_THAT(dense.output, Catch::Contains("model.num_experts is not set"));
  const Run bert = run_tessera(fmt::format("plan {}/configs/bert/tiny.toml --ranks 2 --vocab-size 30522 --set parallel.expert_model_parallel_size=2",
                                           TESSERA_SOURCE_DIR));
  CHECK_THAT(bert.output, Catch::Contains("the bert model has no mixture-of-experts layers"));
  for (const Run* r : {&not_dividing_dp, &not_dividing_experts, &dense, &bert}) CHECK_FALSE(r->exited_with(0));

  // Expert tensor parallel size 1 under tp 2, ep 2 (4 ranks): each rank 4 of the 8 experts whole
  // (3·160·128 elements each) where the default splits them over tp — twice the expert weights per
  // rank, 4 layers × 4 × 61440 / 2 more — with the model's count unchanged.
  const std::string tp2ep2 = fmt::format("plan {} --ranks 4 --vocab-size 50257 --json --set "
                                         "parallel.tensor_model_parallel_size=2 --set parallel.expert_model_parallel_size=2",
                                         tiny);
  const Run split = run_tessera(tp2ep2), whole = run_tessera(tp2ep2 + " --set parallel.expert_tensor_parallel_size=1");
  INFO(whole.output);
  REQUIRE(split.exited_with(0));
  REQUIRE(whole.exited_with(0));
  const auto js = nlohmann::json::parse(split.output), jw = nlohmann::json::parse(whole.output);
  CHECK(jw["total_parameters"] == js["total_parameters"]);
  CHECK(jw["stages"][0]["parameters"].get<std::int64_t>() - js["stages"][0]["parameters"].get<std::int64_t>() ==
        4LL * 4 * 3 * 160 * 128 / 2);
  const Run etp2 = run_tessera(fmt::format("plan {} --ranks 8 --vocab-size 50257 --set parallel.tensor_model_parallel_size=4 "
                                           "--set parallel.expert_model_parallel_size=2 --set parallel.expert_tensor_parallel_size=2",
                                           tiny));
  CHECK_FALSE(etp2.exited_with(0));
  CHECK_THAT(etp2.output, Catch::Contains("parallel.expert_tensor_parallel_size = 2 (in --set") &&
                              Catch::Contains("must be 1") && Catch::Contains("tensor_model_parallel_size (4"));
  const Run ep_not_tp = run_tessera(fmt::format("plan {} --ranks 6 --vocab-size 50257 --set parallel.tensor_model_parallel_size=2 "
                                                "--set parallel.expert_model_parallel_size=3 --set parallel.expert_tensor_parallel_size=1 "
                                                "--set model.num_experts=6 --set training.global_batch_size=48",
                                                tiny));
  CHECK_FALSE(ep_not_tp.exited_with(0));
  CHECK_THAT(ep_not_tp.output, Catch::Contains("expert_model_parallel_size 3 must be 1 (every tp rank holding every expert) or a multiple of 2"));
  // ep 1 under tp 2 with whole experts: every rank all 8 experts (each tp rank runs them on half the
  // rows), their gradients summed over tp.
  const Run replicas = run_tessera(fmt::format("plan {} --ranks 4 --vocab-size 50257 --set parallel.tensor_model_parallel_size=2 "
                                               "--set parallel.expert_tensor_parallel_size=1",
                                               tiny));
  CHECK(replicas.exited_with(0));
  CHECK_THAT(replicas.output, Catch::Contains("every tp rank holds every expert whole and runs them on its share of the rows") &&
                                  Catch::Contains("summed over tp"));
}

TEST_CASE("plan of shapes whose counts do not fit 64 bits is an error, never a negative size", "[unit]") {
  for (const std::string sets : {"--set model.hidden_size=1048576 --set model.num_attention_heads=16 --set "
                                 "model.ffn_hidden_size=16777216 --set model.num_layers=100000",
                                 "--set model.seq_length=1048576 --set model.num_attention_heads=65536 --set "
                                 "model.hidden_size=65536 --set training.micro_batch_size=1048576 "
                                 "--set training.global_batch_size=8388608 --set model.max_position_embeddings=1048576"}) {
    const Run r = run_tessera(fmt::format("plan {} --ranks 1024 --vocab-size 50257 {}", k175b, sets));
    INFO(r.output);
    CHECK(r.exited_with(1));
    CHECK_THAT(r.output, Catch::Contains("more than can be counted in 64 bits"));
  }
}

TEST_CASE("the tessera command fills in the plugins a config does not name", "[unit]") {
  // Core has no default plugins (apps/tessera/plugin_defaults.cpp has them): a config without any
  // `plugin` key plans as gpt + adam, with 1f1b once there is a pipeline.
  TempDir dir;
  const std::string config = dir / "bare.toml";
  std::ofstream(config) << "[model]\nnum_layers = 2\nhidden_size = 32\nnum_attention_heads = 4\nseq_length = 16\n";
  const Run r = run_tessera(fmt::format("plan {} --ranks 2 --vocab-size 300 --json", config));
  INFO(r.output);
  REQUIRE(r.exited_with(0));
  const auto j = nlohmann::json::parse(r.output);
  CHECK(j["optimizer"] == "adam");
  CHECK(j["schedule"] == "gradient accumulation (pp = 1)");
  const Run pp = run_tessera(
      fmt::format("plan {} --ranks 2 --vocab-size 300 --json --set parallel.pipeline_model_parallel_size=2", config));
  INFO(pp.output);
  REQUIRE(pp.exited_with(0));
  CHECK_THAT(nlohmann::json::parse(pp.output)["schedule"].get<std::string>(), Catch::StartsWith("1f1b"));
}
