// upg serve: the OpenAI-compatible HTTP server (src/server) over the batching engine.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "server/auth.h"
#include "upg/core/error.h"
#include "upg/engine/engine.h"
#include "upg/server/server.h"

namespace upg::cli {

namespace {

struct ServeArgs {
  ModelArgs model;
  EngineArgs engine;
  server::ServerOptions server;
  std::vector<std::string> api_keys;
  std::string api_key_file;
  std::string alias;
  double timeout_s = 600;
  double grace_s = 10;
  int max_body_mib = 8;
  bool quiet = false;
};

void serve(ServeArgs& a) {
  server::ServerOptions o = a.server;
  o.api_keys = a.api_keys;
  if (!a.api_key_file.empty())
    for (std::string& k : server::read_api_keys(a.api_key_file)) o.api_keys.push_back(std::move(k));
  o.request_timeout = std::chrono::milliseconds(int64_t(a.timeout_s * 1000));
  o.max_body_bytes = size_t(a.max_body_mib) << 20;
  o.log_requests = !a.quiet;

  // Signals are taken by one thread (sigwait), so they are blocked before any thread
  // starts; a client gone mid-write is an error return, not SIGPIPE.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // wakes the waiter when loading fails
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Declared before the server, so the server (its engine loop) stops before they go.
  std::unique_ptr<Model> model, draft;
  std::unique_ptr<Engine> engine;
  server::Server srv(o);
  const int port = srv.bind();
  srv.start();
  fmt::print(stderr, "upg: serve: listening on http://{}:{}\n", o.host, port);
  std::fflush(stderr);

  const auto grace = std::chrono::milliseconds(int64_t(a.grace_s * 1000));
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGUSR1) return;
    fmt::print(stderr, "upg: serve: {}: finishing the requests in flight (at most {:.0f} s), then exiting\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM", a.grace_s);
    srv.shutdown(grace);
    fmt::print(stderr, "upg: serve: stopped\n");
  });
  try {
    model = load_model(a.model);
    draft = load_draft_model(a.model, a.engine);
    engine = std::make_unique<Engine>(*model, finish_engine_args(a.engine, draft.get()));
  } catch (...) {
    pthread_kill(waiter.native_handle(), SIGUSR1);
    waiter.join();
    throw;
  }
  const std::string id = a.alias.empty() ? std::filesystem::path(a.model.path).filename().replace_extension().string()
                                         : a.alias;
  srv.attach(*model, *engine, id);
  fmt::print(stderr, "upg: serve: ready: model '{}', {} sequences at once, KV cache {} tokens\n", id, a.engine.options.limits.max_running,
             model->kv_blocks() * model->kv_block_size());
  std::fflush(stderr);
  waiter.join();  // until SIGINT/SIGTERM has drained and stopped the server
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  cmd->footer(
      "Endpoints: POST /v1/chat/completions, POST /v1/completions (streamed with \"stream\": true),\n"
      "GET /v1/models, GET /health (503 while loading), GET /metrics (Prometheus text).\n"
      "Example:\n"
      "  upg serve models/SmolLM2-135M-Instruct.Q4_1.gguf --port 8080\n"
      "  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\\n"
      "    -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], \"max_tokens\": 32}'\n"
      "SIGINT/SIGTERM: stop taking requests, finish those in flight within --grace, exit 0.");
  add_model_options(*cmd, args->model);
  ServeArgs& a = *args;
  cmd->add_option("--host", a.server.host, "Address to listen on (loopback unless another is given)")
      ->capture_default_str();
  cmd->add_option("--port", a.server.port, "Port to listen on; 0 picks a free one (printed at start)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--api-key", a.api_keys, "Require 'Authorization: Bearer KEY' (repeatable; /health is exempt)");
  cmd->add_option("--api-key-file", a.api_key_file, "Read API keys from a file, one per line ('#' comments)");
  cmd->add_option("--alias", a.alias, "Model name clients use (default: the file name without extension)");
  // A server's KV pool is shared by many requests: 1 GiB unless --kv-memory says otherwise
  // (pages are touched only as the pool fills).
  a.model.kv_memory_mib = 1024;
  add_engine_options(*cmd, a.engine, a.model);
  cmd->add_option("--max-queue", a.server.max_queue,
                  "Choices admitted at once, running or waiting; more are answered 429 with Retry-After")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--max-n", a.server.max_n, "Largest n (choices per request)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--timeout", a.timeout_s, "Seconds a request may take; then it ends with finish_reason \"abort\"")
      ->check(CLI::Range(0.001, 1e7))
      ->capture_default_str();
  cmd->add_option("--grace", a.grace_s, "Seconds requests in flight get to finish at SIGINT/SIGTERM")
      ->check(CLI::Range(0.0, 1e7))
      ->capture_default_str();
  cmd->add_option("--max-body", a.max_body_mib, "Largest request body in MiB (larger: 413)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--cors-origin", a.server.cors_origins,
                  "Let browser pages from ORIGIN call the API (repeatable; '*': any); no CORS headers otherwise");
  cmd->add_flag("--log-prompts", a.server.log_prompts, "Log request bodies (prompts) to stderr; off by default");
  cmd->add_flag("-q,--quiet", a.quiet, "No request log line");
  cmd->callback([args] { serve(*args); });
}

}  // namespace upg::cli
