// Requests handed from `tessera serve`'s HTTP threads (cpp-httplib runs each connection on a thread of
// its pool) to the one thread that runs the model: requests are served one at a time, in arrival
// order, and under tensor parallelism only that thread talks to the other ranks (MPI may allow only
// the thread that initialised it to communicate).
#pragma once
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>

#include "tessera/tools/generation_request.hpp"

namespace tessera::app {

struct ServeReply {
  int status = 500;  // HTTP status
  std::string body;  // JSON
};

class ServeQueue {
 public:
  struct Job {
    GenerationRequest request;
    std::string body;  // the request as received (what the other ranks of a tp server parse)
    std::promise<ServeReply> reply;
  };

  // From an HTTP thread: queues a parsed request and waits for its reply. 503 once closed.
  ServeReply submit(GenerationRequest request, std::string body) {
    auto job = std::make_unique<Job>();
    job->request = std::move(request);
    job->body = std::move(body);
    std::future<ServeReply> reply = job->reply.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closed_) return {503, error_json("the server is stopping")};
      jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
    return reply.get();
  }

  // On the model's thread: the next job, or null once the queue is closed and empty. Its reply
  // must be set (the submitter waits for it).
  std::unique_ptr<Job> next() {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !jobs_.empty(); });
    if (jobs_.empty()) return nullptr;
    std::unique_ptr<Job> job = std::move(jobs_.front());
    jobs_.pop_front();
    return job;
  }

  // No more jobs are taken; those queued are still handed out by next().
  void close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::unique_ptr<Job>> jobs_;
  bool closed_ = false;
};

}  // namespace tessera::app
