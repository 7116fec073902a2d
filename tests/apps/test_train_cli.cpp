// `tessera train` and `tessera generate` end to end through the binary, and the clear errors (with
// a non-zero exit code, never a crash) for bad configs, missing plugins, corrupt data and
// tokenizer files, and a missing saved model.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "tessera/data/indexed_dataset.hpp"
#include "tessera_cli.hpp"

using tessera::test::TempDir;
namespace test = tessera::test;

namespace {

const std::string kTessera = tessera::test::kTesseraBinary;

using Run = tessera::test::CliRun;
using tessera::test::run_tessera;

// A byte-tokenized corpus of Tessera's own sources and a config that trains on it.
using Workspace = tessera::test::CliWorkspace;

}  // namespace

TEST_CASE("train then generate through the command line", "[unit]") {
  Workspace w;
  const Run t = run_tessera("train " + w.config + " --set training.train_iters=12");
  INFO(t.output);
  REQUIRE(t.status == 0);
  CHECK(t.output.find("iteration       12/      12") != std::string::npos);
  CHECK(t.output.find("validation loss at iteration 12") != std::string::npos);
  CHECK(t.output.find("run summary") != std::string::npos);
  REQUIRE(std::filesystem::exists(w.save() + "/model.safetensors"));
  const Run g = tessera::test::tessera_cli({"generate", "--load", w.save(), "--prompt", "Tensor ", "--max-new-tokens", "20",
                                  "--seed", "3"});
  INFO(g.output);
  REQUIRE(g.status == 0);
  CHECK(g.output.rfind("Tensor ", 0) == 0);
  CHECK(g.output.size() > std::string("Tensor \n").size());
  // Greedy decoding is deterministic.
  const std::string greedy = fmt::format("generate --load {} --prompt x --max-new-tokens 10 --temperature 0", w.save());
  CHECK(run_tessera(greedy).output == run_tessera(greedy).output);
}

TEST_CASE("checkpoint.use_checkpoint_args takes the model and tokenizer from the checkpoint", "[unit]") {
  // Megatron-LM's --use-checkpoint-args with --finetune: a run whose config describes another model
  // (hidden 32, a tokenizer whose files do not exist) fine-tunes a hidden-48 checkpoint.
  Workspace w;
  const Run first = run_tessera("train " + w.config + " --set model.hidden_size=48 --set training.train_iters=2");
  INFO(first.output);
  REQUIRE(first.ok());
  const std::string finetune = "train " + w.config +
                               " --set checkpoint.finetune=true --set model.hidden_dropout=0.2"
                               " --set training.train_iters=2 --set checkpoint.load=" + w.save();
  TempDir out;
  const std::string out_save = out / "save";
  const Run with = run_tessera(finetune + " --set tokenizer.plugin=gpt2_bpe --set tokenizer.vocab_file=absent.json"
                               " --set checkpoint.use_checkpoint_args=true --set checkpoint.save=" + out_save);
  INFO(with.output);
  REQUIRE(with.ok());
  CHECK(with.has("checkpoint.use_checkpoint_args: [model] and [tokenizer] from " + w.save()));
  CHECK(with.has("model.hidden_size: 32 → 48"));
  CHECK(with.has("tokenizer.plugin: \"gpt2_bpe\" → \"byte\""));
  CHECK(!with.has("model.hidden_dropout:"));  // how the run trains stays the run's
  CHECK(with.has("GPT: 2 layers, hidden 48"));
  // The run saves the model it trained: the checkpoint's architecture, its own dropout.
  std::ifstream saved(out_save + "/config.toml");
  std::stringstream text;
  text << saved.rdbuf();
  CHECK(text.str().find("hidden_size = 48") != std::string::npos);
  CHECK(text.str().find("hidden_dropout = 0.2") != std::string::npos);
  // Without it the config's model does not fit the checkpoint's weights: named.
  const Run without = run_tessera(finetune + " --set checkpoint.save=" + out_save + "_without");
  INFO(without.output);
  CHECK(without.clean_error());
  CHECK(without.has("is f32[257, 48] but the model needs f32[257, 32]"));
  // It needs checkpoint.load.
  const Run no_load = run_tessera("train " + w.config + " --set checkpoint.use_checkpoint_args=true");
  CHECK(no_load.clean_error());
  CHECK(no_load.has("checkpoint.use_checkpoint_args = true (--set) needs checkpoint.load"));
}

TEST_CASE("checkpoint.use_mp_args_from_checkpoint_args takes the parallel layout from the checkpoint", "[unit]") {
  // Megatron-LM's --use-mp-args-from-checkpoint-args: a config written for tp 2 resumes, in one
  // process, the checkpoint one process saved.
  Workspace w;
  const Run first = run_tessera("train " + w.config + " --set training.train_iters=2 --set checkpoint.save_interval=2");
  INFO(first.output);
  REQUIRE(first.ok());
  TempDir out;
  const std::string resume = "train " + w.config + " --set training.train_iters=3 --set checkpoint.load=" + w.save() +
                             " --set parallel.tensor_model_parallel_size=2 --set checkpoint.save=" + (out / "save") +
                             " --set optimizer.use_checkpoint_opt_param_scheduler=true";
  const Run with = run_tessera(resume + " --set checkpoint.use_mp_args_from_checkpoint_args=true");
  INFO(with.output);
  REQUIRE(with.ok());
  CHECK(with.has("checkpoint.use_mp_args_from_checkpoint_args: the tensor- and pipeline-parallel layout from " +
                 w.save()));
  CHECK(with.has("parallel.tensor_model_parallel_size: 2 → unset"));
  CHECK(with.has("resumed from checkpoint"));
  CHECK(with.has("iteration        3/       3"));
  // Without it the config's layout needs two processes: named.
  const Run without = run_tessera(resume);
  INFO(without.output);
  CHECK(without.clean_error());
  CHECK(without.has("tensor_model_parallel_size"));
  // It needs checkpoint.load.
  const Run no_load = run_tessera("train " + w.config + " --set checkpoint.use_mp_args_from_checkpoint_args=true");
  CHECK(no_load.clean_error());
  CHECK(no_load.has("checkpoint.use_mp_args_from_checkpoint_args = true (--set) needs checkpoint.load: the checkpoint "
                    "whose parallel layout the run takes"));
}

TEST_CASE("optimizer.decoupled_lr shows on the iteration line after the learning rate, as Megatron-Core's", "[unit]") {
  Workspace w;
  const Run t = run_tessera("train " + w.config + " --set training.train_iters=2 --set optimizer.lr_decay_style=\"constant\" "
                            "--set optimizer.decoupled_lr=0.006");
  INFO(t.output);
  REQUIRE(t.ok());
  CHECK(t.has("learning rate: 3.000E-03 | decoupled learning rate: 6.000E-03 | global batch size:"));
  CHECK(t.has("the embedding and output layer at decoupled_lr 0.006"));
}

TEST_CASE("training.calculate_per_token_loss: a model whose loss it cannot count is refused, naming it", "[unit]") {
  Workspace w;
  const Run gpt = run_tessera("train " + w.config + " --set training.train_iters=1 --set training.calculate_per_token_loss=true");
  INFO(gpt.output);
  CHECK(gpt.ok());
  const Run bert = run_tessera("train " + w.config + " --set training.calculate_per_token_loss=true --set model.plugin=\"bert\"");
  INFO(bert.output);
  CHECK(bert.clean_error());
  CHECK(bert.has("training.calculate_per_token_loss = true (--set): the bert model's loss is not a mean over tokens"));
}

TEST_CASE("model.window_size trains, alone and with document masks, and names itself on the model line", "[unit]") {
  Workspace w;
  const Run t = run_tessera("train " + w.config + " --set training.train_iters=1 --set model.window_size=[7,0]");
  INFO(t.output);
  CHECK(t.ok());
  CHECK(t.has("sliding window of 8 keys"));
  const Run both = run_tessera("train " + w.config + " --set training.train_iters=1 --set model.window_size=[7,0] " +
                               "--set data.reset_attention_mask=true --set data.reset_position_ids=true --set checkpoint.save=" +
                               (w.dir / "save_documents"));
  INFO(both.output);
  CHECK(both.ok());
  CHECK(both.has("sliding window of 8 keys"));
}

TEST_CASE("sequence_parallel with one tensor-parallel rank is accepted and changes nothing", "[unit]") {
  // Megatron-LM accepts --sequence-parallel with tp = 1 (it has nothing to split); so do we. The
  // error for a seq_length tp does not divide needs tp > 1, so mpirun: test_sequence_parallel_config_error.
  Workspace w;
  const auto losses = [](const std::string& output) {  // every iteration's loss and grad norm
    std::string out;
    for (std::size_t at = output.find("lm loss:"); at != std::string::npos; at = output.find("lm loss:", at + 1))
      out += output.substr(at, 47) + "\n";  // "lm loss: 5.961711E+00 | grad norm: 1.949985E+00"
    return out;
  };
  const Run plain = run_tessera("train " + w.config + " --set training.train_iters=3");
  const Run sp = run_tessera("train " + w.config + " --set training.train_iters=3 --set parallel.sequence_parallel=true" +
                             " --set checkpoint.save=" + (w.dir / "save_sp"));
  INFO(sp.output);
  REQUIRE(plain.status == 0);
  REQUIRE(sp.status == 0);
  CHECK(sp.output.find("sequence parallel on") != std::string::npos);
  CHECK(!losses(plain.output).empty());
  CHECK(losses(sp.output) == losses(plain.output));
}

TEST_CASE("a run whose plan needs far more memory than is free says so at start", "[unit]") {
  // A million sequences of 4096 tokens per microbatch: petabytes of activations. The warning comes
  // before the data is opened; the missing corpus then ends the run, so nothing is allocated for it.
  Workspace w;
  const Run r = run_tessera("train " + w.config + " --set training.micro_batch_size=1048576 --set "
                            "training.global_batch_size=1048576 --set model.seq_length=4096 --set data.data_path=" +
                            w.dir / "no_corpus");
  INFO(r.output);
  CHECK(r.status != 0);
  CHECK(r.output.find("memory: `tessera plan` counts") != std::string::npos);
  CHECK(r.output.find("the kernel may kill the run") != std::string::npos);
  CHECK(r.output.find("no_corpus") != std::string::npos);
  // The default micro batch fits: no warning.
  const Run fits = run_tessera("train " + w.config + " --set training.train_iters=1");
  CHECK(fits.output.find("memory: `tessera plan`") == std::string::npos);
}

TEST_CASE("the test split is evaluated once at the end of training, as tessera evaluate reads it", "[unit]") {
  // Megatron-LM's pretrain(): eval_iters global batches of the test split after the last iteration.
  Workspace w;
  const auto test_line = [](const std::string& output) {
    const std::size_t at = output.find("validation loss at iteration 6 on test set |");
    return at == std::string::npos ? std::string() : output.substr(at, output.find('\n', at) - at);
  };
  const Run r = run_tessera("train " + w.config + " --set data.split=\"80,10,10\" --set checkpoint.save_interval=6");
  INFO(r.output);
  REQUIRE(r.status == 0);
  const std::string line = test_line(r.output);
  REQUIRE(!line.empty());
  CHECK(r.output.find(", test loss ") != std::string::npos);  // and in the run summary
  // The checkpoint of that iteration, evaluated on the test split: the same samples, the same loss.
  const Run e = run_tessera("evaluate " + w.config + " --set data.split=\"80,10,10\" --load " + w.dir /
                            "save/iter_0000006" + " --split test");
  INFO(e.output);
  REQUIRE(e.status == 0);
  CHECK(test_line(e.output) == line);
  // A split without test documents: no test evaluation, no error.
  const Run none = run_tessera("train " + w.config + " --set checkpoint.save=" + w.dir / "save2");
  INFO(none.output);
  REQUIRE(none.status == 0);
  CHECK(none.output.find("on test set") == std::string::npos);
}

TEST_CASE("FIM keys with fill-in-the-middle off are named as doing nothing", "[unit]") {
  // fim_rate defaults to 0 (as Megatron-LM's); its sibling keys alone would silently change nothing.
  Workspace w;
  const Run r = run_tessera("train " + w.config + " --set training.train_iters=1 --set data.fim_spm_rate=0.9");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("data.fim_spm_rate (from --set) has no effect: fill-in-the-middle is off (data.fim_rate = 0, "
                      "its default)") != std::string::npos);
}

TEST_CASE("bad input is a clear error with a non-zero exit code", "[unit]") {
  Workspace w;
  SECTION("unknown config key names the key, the file and the allowed keys") {
    const Run r = run_tessera("train " + w.config + " --set model.num_layer=2");
    CHECK(r.clean_error());
    CHECK(r.output.find("num_layer") != std::string::npos);
    CHECK(r.output.find("num_layers") != std::string::npos);
  }
  SECTION("an unknown key is reported before the data files are opened") {
    const Run r = run_tessera("train " + w.config + " --set model.num_layer=2 --set data.data_path=" + (w.dir / "nowhere"));
    CHECK(r.clean_error());
    CHECK(r.output.find("num_layer") != std::string::npos);
    CHECK(r.output.find("nowhere") == std::string::npos);
  }
  SECTION("an unknown [data] key is reported, with a suggestion, before the data files are opened") {
    const Run r = run_tessera("train " + w.config + " --set data.eod_mask_los=true --set data.data_path=" +
                              (w.dir / "nowhere"));
    CHECK(r.clean_error());
    CHECK(r.output.find("unknown key 'data.eod_mask_los'") != std::string::npos);
    CHECK(r.output.find("did you mean 'eod_mask_loss'?") != std::string::npos);
    CHECK(r.output.find("nowhere") == std::string::npos);
  }
  SECTION("wrong type names the key and the file") {
    const Run r = run_tessera("train " + w.config + " --set model.hidden_size=wide");
    CHECK(r.clean_error());
    CHECK(r.output.find("model.hidden_size") != std::string::npos);
    CHECK(r.output.find("integer") != std::string::npos);
  }
  SECTION("a gradient bucket size below 1 is out of range, even in one process") {
    const Run r = run_tessera("train " + w.config + " --set parallel.bucket_size=0");
    CHECK(r.clean_error());
    CHECK(r.output.find("parallel.bucket_size") != std::string::npos);
    CHECK(r.output.find("out of range") != std::string::npos);
  }
  SECTION("missing plugin lists the available ones") {
    const Run r = run_tessera("train " + w.config + " --set model.plugin=gtp");
    CHECK(r.clean_error());
    CHECK(r.output.find("gtp") != std::string::npos);
    CHECK(r.output.find("gpt") != std::string::npos);
  }
  SECTION("truncated .idx names the file") {
    std::filesystem::resize_file(w.dir / "corpus.idx", 40);
    const Run r = run_tessera("train " + w.config);
    CHECK(r.clean_error());
    CHECK(r.output.find("corpus.idx") != std::string::npos);
  }
  SECTION("missing .idx names the file") {
    std::filesystem::remove(w.dir / "corpus.idx");
    const Run r = run_tessera("train " + w.config);
    CHECK(r.clean_error());
    CHECK(r.output.find("corpus.idx") != std::string::npos);
    CHECK(r.output.find("data plugin 'gpt_indexed': ") != std::string::npos);  // open() tagged like the factory
  }
  SECTION("a tokenizer file that does not parse names the file") {
    std::ofstream(w.dir / "vocab.json") << "{ not json";
    std::ofstream(w.dir / "merges.txt") << "#version: 0.2\n";
    const Run r = run_tessera(fmt::format("train {} --set tokenizer.plugin=gpt2_bpe --set tokenizer.vocab_file={} "
                                      "--set tokenizer.merges_file={}", w.config, w.dir / "vocab.json", w.dir / "merges.txt"));
    CHECK(r.clean_error());
    CHECK(r.output.find("vocab.json") != std::string::npos);
  }
  SECTION("a layout the world size does not divide names the sizes") {
    const Run r = run_tessera("train " + w.config + " --set parallel.pipeline_model_parallel_size=2");
    CHECK(r.clean_error());
    CHECK(r.output.find("world size 1 is not divisible") != std::string::npos);
    CHECK(r.output.find("pipeline_model_parallel_size (2)") != std::string::npos);
  }
  SECTION("untrusted text is never copied whole into a message") {
    const Run r = run_tessera("train " + w.config + " --set model.plugin=" + std::string(40000, 'A'));
    CHECK(r.clean_error());
    CHECK(r.output.size() < 1000);
    CHECK(r.output.find("(40000 bytes)") != std::string::npos);
  }
  SECTION("a schedule that is not installed lists the available ones") {
    const Run r = run_tessera("train " + w.config + " --set schedule.plugin=gpipe");
    CHECK(r.clean_error());
    CHECK(r.output.find("gpipe") != std::string::npos);
    CHECK(r.output.find("1f1b") != std::string::npos);
  }
  SECTION("train_iters too large for the sample indices names training.train_iters, at once") {
    // 2^62 − 1 × 4 samples overflowed int64 and looped for ever in the epoch count; 10^15 ran out of
    // memory after 41 s. Both are a ConfigError before any index is built.
    for (const char* iters : {"4611686018427387903", "1000000000000000"}) {
      const Run r = run_tessera("train " + w.config + " --set training.train_iters=" + iters);
      INFO(r.output);
      CHECK(r.clean_error());
      CHECK(r.output.find("training.train_iters") != std::string::npos);
    }
  }
  SECTION("generate without a saved model says what it expected") {
    const Run r = run_tessera("generate --load " + (w.dir / "nothing"));
    CHECK(r.clean_error());
    CHECK(r.output.find("model.safetensors") != std::string::npos);
  }
  SECTION("a config file that does not exist") {
    const Run r = run_tessera("train " + (w.dir / "missing.toml"));
    CHECK(r.exited_with(105));  // CLI11's ExistingFile check
    CHECK(r.output.find("missing.toml") != std::string::npos);
  }
}

TEST_CASE("data made with another tokenizer is a clear error", "[unit]") {
  Workspace w;
  {
    // Ids of a GPT-2-sized vocabulary where the byte tokenizer (257 ids) is configured.
    tessera::IndexedDatasetWriter out(w.dir / "gpt2", tessera::IndexDtype::u16);
    for (int d = 0; d < 20; ++d) {
      std::vector<std::int32_t> ids(200);
      for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>((d * 997 + i * 31) % 50257);
      out.add_document(ids);
    }
    out.finalize();
  }
  const Run r = run_tessera("train " + w.config + " --set data.data_path=" + (w.dir / "gpt2"));
  INFO(r.output);
  CHECK(r.clean_error());
  CHECK(r.output.find("gpt2.bin") != std::string::npos);
  CHECK(r.output.find("another tokenizer") != std::string::npos);
}

TEST_CASE("bench takes a config path as a path, never as shell text", "[unit]") {
  // A config named like a shell command must be read as a file: bench starts its children with an
  // argument vector (posix_spawn), so nothing in the name is ever interpreted.
  Workspace w;
  const std::string evil = w.dir / "a';touch PWNED;'$(touch PWNED2)`touch PWNED3`.toml";
  std::filesystem::copy_file(w.config, evil);
  const Run r = tessera::test::tessera_cli({"bench", "--no-pytorch", "--iters", "1", "--warmup", "0", "--threads", "1", evil});
  INFO(r.output);
  CHECK(r.ok());
  CHECK(r.output.find("/ tessera") != std::string::npos);
  for (const char* f : {"PWNED", "PWNED2", "PWNED3"}) {
    CHECK_FALSE(std::filesystem::exists(f));
    CHECK_FALSE(std::filesystem::exists(w.dir.path / f));
  }
  // --python is a program path too: a command line there is just a program that does not exist.
  const Run p = tessera::test::tessera_cli(
      {"bench", "--iters", "1", "--warmup", "0", "--threads", "1", "--python", "touch PWNED4; python3", evil});
  CHECK_FALSE(p.ok());
  CHECK(p.output.find("touch PWNED4; python3") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists("PWNED4"));
}

TEST_CASE("numeric options out of range are rejected before anything runs", "[unit]") {
  const auto check = [](const std::string& args, const std::string& option) {
    const Run r = run_tessera(args);
    INFO(args << "\n" << r.output);
    CHECK(r.exited_with(105));  // CLI11's ValidationError
    CHECK(r.output.find(option) != std::string::npos);
  };
  // --iters 0 used to take the median of no timings (a segfault in the child).
  const std::string tiny = TESSERA_SOURCE_DIR "/configs/gpt/tiny.toml";
  check("bench --child --no-pytorch --iters 0 " + tiny, "--iters");
  check("bench --child --no-pytorch --warmup -1 " + tiny, "--warmup");
  check("bench --child --no-pytorch --threads 0 " + tiny, "--threads");
  // generate checks its options before looking for the model.
  check("generate --load nowhere --temperature -0.5", "--temperature");
  check("generate --load nowhere --top-p 0", "--top-p");
  check("generate --load nowhere --top-p 1.5", "--top-p");
  check("generate --load nowhere --top-k -1", "--top-k");
  check("generate --load nowhere --top-p nan", "--top-p");
  check("generate --load nowhere --max-new-tokens -3", "--max-new-tokens");
}
