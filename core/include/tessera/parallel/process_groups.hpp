// ProcessGroups: the communicators of one rank's groups, created once from a ParallelLayout.
//
// Every rank must call build_process_groups (it splits the world collectively). Groups are passed
// explicitly to whoever communicates, never looked up globally.
#pragma once
#include <memory>

#include "tessera/parallel/communicator.hpp"
#include "tessera/parallel/parallel_layout.hpp"

namespace tessera {

struct ProcessGroups {
  std::shared_ptr<Communicator> world;
  std::shared_ptr<Communicator> tp;
  std::shared_ptr<Communicator> dp;
  std::shared_ptr<Communicator> pp;
  std::shared_ptr<Communicator> embedding;  // nullptr on middle pipeline stages
  std::shared_ptr<Communicator> ep;         // expert parallel (one rank without it)
  std::shared_ptr<Communicator> expert_dp;  // the ranks holding this rank's experts (dp without ep)
  std::shared_ptr<Communicator> cp;         // context parallel (one rank without it)

  Communicator& group(GroupKind kind) const;  // throws CommError for a missing embedding group
};

// Splits `world` (whose rank and size must match the layout's) into the layout's groups; each
// group's ranks are ordered as layout.group_ranks() lists them.
ProcessGroups build_process_groups(const ParallelLayout& layout, std::shared_ptr<Communicator> world);

}  // namespace tessera
