// What rank 0 of a tensor-parallel `tessera serve` hands the other ranks (the followers, which run
// no HTTP server): the next request to generate for, or stop. Followers wait in broadcast_serve_work
// between requests, then run the same generation as rank 0 in lockstep.
#pragma once
#include <cstdint>
#include <string>

#include "tessera/parallel/communicator.hpp"

namespace tessera::app {

struct ServeWork {
  bool stop = false;
  std::string request;        // the request's JSON body as rank 0 received it (checked there: valid)
  std::uint64_t entropy = 0;  // seeds the prompts without random_seed, the same on every rank
};

// Rank `root` of `group` sends `work`; every other rank receives it into `work`. Collective: a header
// (stop, length, entropy) then the request's bytes.
void broadcast_serve_work(Communicator& group, ServeWork& work, int root = 0);

}  // namespace tessera::app
