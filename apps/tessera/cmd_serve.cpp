// tessera serve --load DIR [--port 5000] [--host 127.0.0.1] [--tp N]: Megatron-LM's text generation
// server (tools/run_text_generation_server.py) over cpp-httplib. PUT /api with a JSON request; the
// request handling is tools/generation_request.hpp. cpp-httplib's threads accept connections
// concurrently and hand parsed requests to the main thread (serve_queue.hpp), which runs the model on
// them one at a time. SIGINT or SIGTERM stops the listener and the command exits 0.
//
// Tensor parallelism: under `mpirun -np N tessera serve --load DIR --tp N` (pp = 1, no data-parallel
// copies) every rank loads its shard (saved_generator.hpp). Rank 0 serves HTTP exactly as one process
// does; it checks each request (an invalid one is answered 400 there, the others never see it), then
// broadcasts its body and a seed for unseeded sampling to the followers (serve_work.hpp), and every
// rank generates for it in lockstep, the logits rank 0's everywhere (rank_zero_logits.hpp), so all
// sample the same tokens. The followers listen on nothing and ignore SIGINT/SIGTERM: SIGINT or SIGTERM
// to rank 0 stops its listener, it broadcasts "stop", and every rank exits 0. A failure on any rank
// during generation ends the whole job, non-zero (the others could not go on without it), except
// non-finite logits, which every rank sees alike: a 500, and serving goes on.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "command.hpp"
#include "saved_generator.hpp"
#include "serve_queue.hpp"
#include "serve_work.hpp"
#include "tessera/error.hpp"
#include "tessera/generation.hpp"
#include "tessera/logging.hpp"
#include "tessera/ops.hpp"
#include "tessera/parallel/abort.hpp"
#include "tessera/parallel/mpi_runtime.hpp"
#include "tessera/tools/generation_request.hpp"
#include "tessera/tools/text_generation.hpp"

namespace tessera::app {
namespace {

struct ServeArgs {
  std::string load, host = "127.0.0.1";
  int port = 5000;
  int tp = 1;
  std::int64_t threads = 0;
};

// Followers wait for rank 0's next request as long as the server runs: their wait for it has no
// practical deadline (a rank that dies ends the job through the launcher, not through this wait).
constexpr std::chrono::hours kIdleFollower{24 * 365};

// The signal handler writes a byte here (async-signal-safe); a thread waiting on it stops the server.
int g_stop_pipe[2] = {-1, -1};
extern "C" __attribute__((visibility("hidden"))) void tessera_serve_stop_handler(int) {
  const char c = 1;
  [[maybe_unused]] const ssize_t n = ::write(g_stop_pipe[1], &c, 1);
}

std::uint64_t random_entropy() {
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

// Rank 0's answer to one parsed request, on the main thread. `followers`: the channel to the other
// ranks of a tensor-parallel server (null in one process).
ServeReply answer(const ServeQueue::Job& job, SavedGenerator& loaded, Communicator* followers) {
  const std::int64_t seq_length = loaded.model->seq_length();
  try {
    tokenize_generation_request(*loaded.tokenizer, seq_length, job.request);
  } catch (const BadRequest& e) {
    return {400, error_json(e.what())};  // before any broadcast: the followers never see it
  } catch (const std::exception& e) {
    log_warn("request failed: {}", e.what());
    return {500, error_json(e.what())};
  }
  const std::uint64_t entropy = random_entropy();
  try {
    if (followers) {
      ServeWork work{false, job.body, entropy};
      broadcast_serve_work(*followers, work);
    }
    const GenerationResponse out =
        generate_for_request(*loaded.generator, *loaded.tokenizer, seq_length, job.request, entropy);
    return {200, generation_response_json(out)};
  } catch (const NonFiniteLogits& e) {
    // Every rank has rank 0's logits, so every rank stopped at the same check: serving goes on.
    log_warn("request failed: {}", e.what());
    return {500, error_json(e.what())};
  } catch (const std::exception& e) {
    if (followers)
      abort_job(fmt::format("tessera serve: generation failed on rank 0, and the other ranks cannot go on without "
                            "it: {}", e.what()));
    log_warn("request failed: {}", e.what());
    return {500, error_json(e.what())};
  } catch (...) {
    if (followers) abort_job("tessera serve: generation failed on rank 0 with an unknown error");
    return {500, error_json("unknown internal error")};
  }
}

// Rank 0 (or the only process): the HTTP server.
int lead(const ServeArgs& a, SavedGenerator& loaded, Communicator* followers) {
  httplib::Server server;
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, which would let a second server on
  // the same port start and take half of the requests instead of failing.
  server.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.set_payload_max_length(std::size_t{64} << 20);  // 64 MiB of prompts at most (else 413)
  ServeQueue queue;
  const auto json_reply = [](httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body, "application/json");
  };
  server.Put("/api", [&](const httplib::Request& req, httplib::Response& res) {
    try {
      GenerationRequest r = parse_generation_request(req.body);
      const ServeReply reply = queue.submit(std::move(r), req.body);
      json_reply(res, reply.status, reply.body);
    } catch (const BadRequest& e) {
      json_reply(res, 400, error_json(e.what()));
    } catch (const std::exception& e) {
      log_warn("request failed: {}", e.what());
      json_reply(res, 500, error_json(e.what()));
    } catch (...) {
      json_reply(res, 500, error_json("unknown internal error"));
    }
  });
  const auto not_allowed = [&](const httplib::Request& req, httplib::Response& res) {
    res.set_header("Allow", "PUT");
    json_reply(res, 405, error_json(fmt::format("{} /api is not supported: send PUT /api with a JSON body", req.method)));
  };
  server.Get("/api", not_allowed);
  server.Post("/api", not_allowed);
  server.Delete("/api", not_allowed);
  server.Patch("/api", not_allowed);

  if (::pipe(g_stop_pipe) != 0) throw Error("tessera serve: cannot create a pipe for signal handling");
  struct sigaction sa {};
  sa.sa_handler = tessera_serve_stop_handler;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  // Set once listen_after_bind() has returned (or will never run): the stopper has nothing to stop.
  std::atomic<bool> listen_over{false};
  std::thread stopper([&server, &listen_over] {
    char c = 0;
    while (::read(g_stop_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    // cpp-httplib's stop() does nothing until listen_after_bind() has marked the server running, and
    // a signal may come right after the "serving" line, before the HTTP thread listens: wait for
    // that, then stop once (a second stop() of a stopping server asserts in cpp-httplib).
    while (!listen_over.load()) {
      if (server.is_running()) {
        server.stop();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  const auto wake_stopper = [&] {
    tessera_serve_stop_handler(0);
    stopper.join();
  };

  int port = a.port;
  if (port == 0) {
    port = server.bind_to_any_port(a.host);
  } else if (!server.bind_to_port(a.host, port)) {
    port = -1;
  }
  if (port < 0) {
    listen_over = true;
    wake_stopper();
    throw Error(fmt::format("tessera serve: cannot listen on {}:{} (in use, or not an address of this machine)",
                            a.host, a.port));
  }
  std::string tp;
  if (followers)
    tp = a.tp == 2 ? " with tensor parallelism 2 (rank 1 follows)"
                   : fmt::format(" with tensor parallelism {} (ranks 1 to {} follow)", a.tp, a.tp - 1);
  fmt::print("serving {} on http://{}:{}/api (PUT, JSON){}; SIGINT or SIGTERM stops\n", loaded.saved.describe(), a.host,
             port, tp);
  std::fflush(stdout);
  // The listener on its own thread; this one runs the model. After the listener stops (its threads
  // joined, so no request is waiting) the queue closes and the loop ends.
  std::thread http([&] {
    try {
      server.listen_after_bind();
    } catch (const std::exception& e) {
      log_warn("the HTTP server failed: {}", e.what());
    }
    listen_over = true;
    queue.close();
  });
  while (std::unique_ptr<ServeQueue::Job> job = queue.next()) job->reply.set_value(answer(*job, loaded, followers));
  http.join();
  wake_stopper();
  if (followers) {
    ServeWork stop{true, "", 0};
    broadcast_serve_work(*followers, stop);
  }
  fmt::print("server stopped\n");
  std::fflush(stdout);
  return 0;
}

// A follower (rank > 0 of a tensor-parallel server): rank 0's requests, generated in lockstep with
// it, until rank 0 says stop. Signals are rank 0's to act on: a SIGTERM sent to every process (a
// scheduler's, a terminal's Ctrl-C) then stops the job through rank 0 alone, exit 0.
int follow(SavedGenerator& loaded, Communicator& leader) {
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  const std::int64_t seq_length = loaded.model->seq_length();
  fmt::print("rank {}: following rank 0, which serves\n", loaded.rank());
  std::fflush(stdout);
  for (;;) {
    ServeWork work;
    broadcast_serve_work(leader, work);
    if (work.stop) break;
    const GenerationRequest r = parse_generation_request(work.request);  // rank 0 parsed it: valid
    try {
      generate_for_request(*loaded.generator, *loaded.tokenizer, seq_length, r, work.entropy);
    } catch (const NonFiniteLogits&) {
      // Rank 0 has the same logits, stopped at the same check and answers 500; anything else ends the job.
    }
  }
  fmt::print("rank {}: stopped by rank 0\n", loaded.rank());
  std::fflush(stdout);
  return 0;
}

int run_serve(const ServeArgs& a) {
  if (a.threads > 0) ops::set_num_threads(static_cast<int>(a.threads));
  SavedGenerator loaded = load_saved_generator(a.load, a.tp, "tessera serve");
  if (!loaded.parallel) return lead(a, loaded, nullptr);
  // Requests and stop travel on a communicator of their own, with the followers' long deadline.
  std::unique_ptr<Communicator> control = loaded.parallel->groups.world->split(0, loaded.rank(), "serve");
  control->set_timeout(kIdleFollower);
  set_idle_waits(*control);  // an idle follower polls every 10 ms, not every 100 µs
  return loaded.rank() == 0 ? lead(a, loaded, control.get()) : follow(loaded, *control);
}

RegisterCommand reg{{"serve",
                     [](CLI::App& sub) -> std::function<int()> {
                       auto a = std::make_shared<ServeArgs>();
                       sub.add_option("--load", a->load, "a saved model: the [checkpoint] save folder of `tessera train` or a checkpoint folder iter_XXXXXXX")->required();
                       sub.add_option("--port", a->port, "TCP port (0: any free port, printed)")
                           ->capture_default_str()
                           ->check(CLI::Range(0, 65535));
                       sub.add_option("--host", a->host, "address to listen on (0.0.0.0: every interface)")->capture_default_str();
                       sub.add_option("--tp", a->tp,
                                      "tensor-parallel size: under mpirun -np N, --tp N (each rank a shard; rank 0 "
                                      "serves HTTP, the others follow)")
                           ->capture_default_str()
                           ->check(in_range(1));
                       sub.add_option("--threads", a->threads, "CPU threads (0 = all)");
                       return [a] {
                         auto serve = [&] { return run_serve(*a); };
                         return run_on_this_rank(serve);
                       };
                     },
                     "serve Megatron-LM's text generation API (PUT /api) over HTTP"}};

}  // namespace
}  // namespace tessera::app
