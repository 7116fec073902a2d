// A checkpoint's metadata.json: parse_checkpoint_metadata on mutated files. Seeds: what the trainer
// writes, for one process and for a tp2·pp2·dp2 layout with distributed_adam.
#include "fuzz_harness.hpp"
#include "tessera/train/checkpoint.hpp"

using namespace tessera;

TEST_CASE("fuzz: checkpoint metadata.json", "[fuzz]") {
  fuzz::FuzzTarget t;
  t.name = "metadata";
  CheckpointMetadata one;
  one.iteration = 10;
  one.global_batch_size = 4;
  one.consumed_samples = 40;
  one.optimizer_steps = 10;
  one.optimizer = "adam";
  one.bucket_size = 40000000;
  one.seed = 1234;
  one.config = "[model]\nplugin = \"gpt\"\n";
  CheckpointMetadata big = one;
  big.world_size = 8;
  big.tensor_parallel = big.pipeline_parallel = big.data_parallel = 2;
  big.virtual_pipeline = 2;
  big.first_stage_layers = 2;  // uneven pipeline stages
  big.last_stage_layers = 6;
  big.sequence_parallel = true;
  big.optimizer = "distributed_adam";
  // Later records: the schedule, a batch ramp, a fresh optimizer's offset, no optimizer files.
  CheckpointMetadata ramped = one;
  ramped.ramp = {2, 2, 10, 4};
  ramped.iteration = 10;
  ramped.consumed_samples = ramped.ramp.consumed_after(10);
  ramped.optimizer_steps = 10;
  ramped.optimizer_state_offset = 4;
  ramped.param_schedule = OptimizerParamSchedule{};
  ramped.param_schedule->lr.style = "WSD";
  ramped.param_schedule->lr.wsd_decay_samples = 8;
  ramped.param_schedule->decoupled_lr = 5e-3;  // the embedding's and output layer's own rate
  ramped.param_schedule->decoupled_min_lr = 5e-4;
  ramped.scheduler_samples = ramped.consumed_samples;
  ramped.optimizer_saved = false;
  // The embedding and loss counted as layers of the pipeline split.
  CheckpointMetadata counted = one;
  counted.world_size = counted.pipeline_parallel = 2;
  counted.embedding_in_split = counted.loss_in_split = true;
  t.seeds = {checkpoint_metadata_json(one), checkpoint_metadata_json(big), checkpoint_metadata_json(ramped),
             checkpoint_metadata_json(counted)};
  t.parse = [](const fuzz::Bytes& text) { parse_checkpoint_metadata(text, "fuzz/metadata.json"); };
  t.iterations = 12000;
  fuzz::run_fuzz(t);

  // The seeds' layouts read back as written (absent keys: even stages, nothing counted).
  for (const CheckpointMetadata& m : {one, big, counted}) {
    const CheckpointMetadata back = parse_checkpoint_metadata(checkpoint_metadata_json(m), "seed/metadata.json");
    CHECK(back.first_stage_layers == m.first_stage_layers);
    CHECK(back.last_stage_layers == m.last_stage_layers);
    CHECK(back.embedding_in_split == m.embedding_in_split);
    CHECK(back.loss_in_split == m.loss_in_split);
    CHECK(back.virtual_pipeline == m.virtual_pipeline);
  }
  const CheckpointMetadata back = parse_checkpoint_metadata(checkpoint_metadata_json(ramped), "seed/metadata.json");
  REQUIRE(back.param_schedule);
  CHECK(back.param_schedule->decoupled_lr == 5e-3);
  CHECK(back.param_schedule->decoupled_min_lr == 5e-4);
  CHECK_FALSE(parse_checkpoint_metadata(checkpoint_metadata_json(one), "seed/metadata.json").param_schedule.has_value());
}
