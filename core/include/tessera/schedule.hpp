// Pipeline schedule interface that schedule plugins (1f1b, interleaved) implement.
//
// A schedule is data: for one pipeline stage it lists, in order, the forward and backward passes
// of each microbatch and the transfers around them. The core's executor (train/pipeline_executor)
// runs any such list, so a schedule can be tested against a hand-written table without running a
// model, and swapping schedules is a config edit ([schedule] plugin = "1f1b").
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tessera {

class ConfigSection;

struct PipelineStep {
  enum class Kind {
    recv_activation,  // the previous stage's output for `microbatch` (not on the first stage)
    forward,
    send_activation,  // this stage's output to the next stage (not on the last stage)
    recv_grad,        // the next stage's gradient w.r.t. our output (not on the last stage)
    backward,
    send_grad,        // the gradient w.r.t. our input to the previous stage (not on the first stage)
  };
  Kind kind;
  std::int64_t microbatch;
  int chunk = 0;  // model chunk (virtual pipeline stage); 0 without interleaving

  bool operator==(const PipelineStep&) const = default;
};

const char* step_kind_name(PipelineStep::Kind kind);
std::string describe(const PipelineStep& step);  // "F3", "B0", "recv_act 2", … for messages and tests

struct ScheduleSpec {
  int pipeline_size = 1;             // pp
  int stage = 0;                     // this rank's pp rank
  std::int64_t num_microbatches = 1;  // m: microbatches per iteration on this data-parallel rank
  int virtual_size = 1;              // v: model chunks per rank (virtual pipeline stages)

  // Chunk c of stage s is virtual stage c·pp + s. The first virtual stage reads the tokens, the
  // last computes the loss; the others receive from and send to the neighbouring virtual stages
  // (from stage pp − 1 chunk c − 1 to stage 0 chunk c, wrapping around).
  bool has_previous(int chunk) const { return stage > 0 || chunk > 0; }
  bool has_next(int chunk) const { return stage < pipeline_size - 1 || chunk < virtual_size - 1; }
};

class Schedule {
 public:
  using FactorySignature = std::unique_ptr<Schedule>(const ConfigSection& schedule);
  virtual ~Schedule() = default;
  // The steps of one training iteration (forward and backward) for spec.stage.
  virtual std::vector<PipelineStep> training_steps(const ScheduleSpec& spec) const = 0;
  virtual std::string describe() const = 0;
};

// Append one pass of (microbatch, chunk) with the transfers around it that spec's stage needs:
// receive the input, forward, send the output (forward); receive the output's gradient, backward,
// send the input's gradient (backward). The building blocks of every schedule.
void append_forward(std::vector<PipelineStep>& steps, const ScheduleSpec& spec, std::int64_t microbatch, int chunk = 0);
void append_backward(std::vector<PipelineStep>& steps, const ScheduleSpec& spec, std::int64_t microbatch, int chunk = 0);

// The steps without backward (evaluation): every microbatch received, forwarded and sent on, chunk
// by chunk.
std::vector<PipelineStep> forward_only_steps(const ScheduleSpec& spec);

// Checks that `steps` is a well-formed schedule for `spec`: every (microbatch, chunk) forwarded
// once and (when `with_backward`) backwarded once after its forward, transfers present exactly
// where the virtual stage has a neighbour and in the right place around their pass. Throws Error naming the schedule
// and the first offending step.
void validate_steps(const std::vector<PipelineStep>& steps, const ScheduleSpec& spec, bool with_backward,
                    const std::string& schedule_name);

// Whether the executor starts step i's transfer together with step i + 1's (Communicator::start_batch):
// a send directly followed by a receive — 1F1B's send_forward_recv_backward and
// send_backward_recv_forward, as Megatron-LM batches them for NCCL.
bool batched_with_next(const std::vector<PipelineStep>& steps, std::size_t i);

// The step lists of all pp stages (lists[s] for stage s): the first (src → dst) direction on which
// the messages are not received in the order they are sent, described; "" when every direction
// matches. MPI matches by tag and would not mind, but NCCL has no tags — a receive takes the next
// message of its direction — so a schedule must pass this to run on NCCL (Megatron's batched p2p
// relies on the same order).
std::string p2p_order_mismatch(const std::vector<std::vector<PipelineStep>>& lists);

}  // namespace tessera
