// tessera serve --load DIR [--port 5000] [--host 127.0.0.1]: Megatron-LM's text generation server
// (tools/run_text_generation_server.py) over cpp-httplib. PUT /api with a JSON request; the request
// handling is tools/generation_request.hpp. Requests are served one at a time (a mutex around the
// model: cpp-httplib's threads accept connections concurrently, their requests queue). SIGINT or
// SIGTERM stops the listener and the command exits 0. One process (tp = pp = 1).
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "command.hpp"
#include "saved_generator.hpp"
#include "tessera/error.hpp"
#include "tessera/generation.hpp"
#include "tessera/logging.hpp"
#include "tessera/ops.hpp"
#include "tessera/tools/generation_request.hpp"

namespace tessera::app {
namespace {

struct ServeArgs {
  std::string load, host = "127.0.0.1";
  int port = 5000;
  std::int64_t threads = 0;
};

// The signal handler writes a byte here (async-signal-safe); a thread waiting on it stops the server.
int g_stop_pipe[2] = {-1, -1};
extern "C" __attribute__((visibility("hidden"))) void tessera_serve_stop_handler(int) {
  const char c = 1;
  [[maybe_unused]] const ssize_t n = ::write(g_stop_pipe[1], &c, 1);
}

int run_serve(const ServeArgs& a) {
  if (a.threads > 0) ops::set_num_threads(static_cast<int>(a.threads));
  SavedGenerator loaded = load_saved_generator(a.load);
  const SavedModel& saved = loaded.saved;
  const Tokenizer* tokenizer = loaded.tokenizer.get();
  const Model* model = loaded.model.get();
  Generator& generator = *loaded.generator;
  const std::int64_t seq_length = model->seq_length();

  httplib::Server server;
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, which would let a second server on
  // the same port start and take half of the requests instead of failing.
  server.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.set_payload_max_length(std::size_t{64} << 20);  // 64 MiB of prompts at most (else 413)
  std::mutex model_mutex;
  const auto json_reply = [](httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body, "application/json");
  };
  server.Put("/api", [&](const httplib::Request& req, httplib::Response& res) {
    try {
      const GenerationRequest r = parse_generation_request(req.body);
      std::lock_guard<std::mutex> lock(model_mutex);
      const GenerationResponse out = generate_for_request(generator, *tokenizer, seq_length, r);
      json_reply(res, 200, generation_response_json(out));
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
  std::thread stopper([&server] {
    char c = 0;
    while (::read(g_stop_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    server.stop();
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
    wake_stopper();
    throw Error(fmt::format("tessera serve: cannot listen on {}:{} (in use, or not an address of this machine)",
                            a.host, a.port));
  }
  fmt::print("serving {} on http://{}:{}/api (PUT, JSON); SIGINT or SIGTERM stops\n", saved.describe(), a.host, port);
  std::fflush(stdout);
  server.listen_after_bind();
  wake_stopper();
  fmt::print("server stopped\n");
  std::fflush(stdout);
  return 0;
}

RegisterCommand reg{{"serve",
                     [](CLI::App& sub) -> std::function<int()> {
                       auto a = std::make_shared<ServeArgs>();
                       sub.add_option("--load", a->load, "a saved model: the [checkpoint] save folder of `tessera train` or a checkpoint folder iter_XXXXXXX")->required();
                       sub.add_option("--port", a->port, "TCP port (0: any free port, printed)")
                           ->capture_default_str()
                           ->check(CLI::Range(0, 65535));
                       sub.add_option("--host", a->host, "address to listen on (0.0.0.0: every interface)")->capture_default_str();
                       sub.add_option("--threads", a->threads, "CPU threads (0 = all)");
                       return [a] { return run_serve(*a); };
                     },
                     "serve Megatron-LM's text generation API (PUT /api) over HTTP"}};

}  // namespace
}  // namespace tessera::app
