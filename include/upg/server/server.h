#pragma once
// `upg serve`: an OpenAI-compatible HTTP server over the batching engine. The listener
// starts before the model loads (/health answers 503 until attach()), every request is
// handled on a thread of its own, one engine loop thread runs the model, and shutdown()
// drains what is in flight before it stops.
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "upg/engine/engine.h"
#include "upg/model/model.h"

namespace upg::server {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless asked
  int port = 8080;                 // 0: a free port, which bind() returns
  std::vector<std::string> api_keys;  // empty: no authentication
  // Engine requests (one per choice) admitted at once, running or waiting; a request
  // that would pass it gets 429 with Retry-After.
  int max_queue = 64;
  int max_n = 16;                                     // choices per request
  size_t max_body_bytes = size_t(8) << 20;            // larger bodies get 413
  std::chrono::milliseconds request_timeout{600000};  // then the choices end with "abort"
  std::chrono::seconds io_timeout{60};                // reading a request, writing a response
  bool log_requests = true;                           // one line per request on stderr
  bool log_prompts = false;                           // the request bodies too
  // Origins a browser page may call the API from ("*": any): their responses carry
  // Access-Control-Allow-Origin and preflight OPTIONS requests are answered. Empty: no
  // CORS headers at all.
  std::vector<std::string> cors_origins;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // shutdown(0) if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port. Throws upg::Error when it cannot.
  int bind();
  // Serves on a thread of its own: /health is 503 and generation is refused until attach().
  void start();
  // The model is loaded: serve it under `model_id`. The engine runs on the server's own
  // loop thread from now on; both must outlive the server's shutdown().
  void attach(Model& model, Engine& engine, std::string model_id);
  // Stops taking requests (503), lets those in flight finish for up to `grace`, ends the
  // rest (finish_reason "abort"), then stops listening. Idempotent.
  void shutdown(std::chrono::milliseconds grace);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upg::server
