// A communicator for counting, in one process: it has a group's size and rank, does nothing to the
// data (reductions are identities, gathers and receives give zeros) and tallies every call and the
// elements it carries per (group name, op). Used to compare `tessera plan`'s and the nn modules'
// predicted collectives with what the code really calls, for any tensor-parallel rank.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "tessera/error.hpp"
#include "tessera/model_plan.hpp"
#include "tessera/parallel/communicator.hpp"

namespace tessera::test {

// (group, op) → calls and elements seen on this rank.
using Tally = std::map<std::pair<std::string, std::string>, CollectiveCount>;

class ShapeOnlyCommunicator final : public Communicator {
 public:
  ShapeOnlyCommunicator(std::string name, int rank, int size, std::shared_ptr<Tally> tally)
      : Communicator(std::move(name)), rank_(rank), size_(size), tally_(std::move(tally)) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  CommRequest start_all_reduce(Tensor& t, ReduceOp) override { return count("all_reduce", t.numel()); }
  CommRequest start_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp) override {
    out.zero_();
    return count("reduce_scatter", in.numel());
  }
  CommRequest start_all_gather(const Tensor&, Tensor& out) override {
    out.zero_();
    return count("all_gather", out.numel());
  }
  CommRequest start_broadcast(Tensor& t, int) override { return count("broadcast", t.numel()); }
  CommRequest start_send(const Tensor& t, int, int) override { return count("send", t.numel()); }
  CommRequest start_recv(Tensor& t, int, int) override {
    t.zero_();
    return count("recv", t.numel());
  }
  CommRequest start_barrier() override { return {}; }
  std::unique_ptr<Communicator> split(int, int, const std::string&) override {
    throw Error("ShapeOnlyCommunicator cannot split");
  }

 private:
  CommRequest count(const std::string& op, std::int64_t n) {
    (*tally_)[{name(), op}] += {1, n};
    return {};  // already complete
  }
  int rank_, size_;
  std::shared_ptr<Tally> tally_;
};

}  // namespace tessera::test
