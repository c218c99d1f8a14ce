// The HTTP side of upg serve: cpp-httplib (Debian's libcpp-httplib-dev) does the
// protocol; this file routes, authenticates, admits (the bounded queue), and turns
// ApiErrors into OpenAI error bodies. The generation itself is Completion's.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "server/api-error.h"
#include "server/api-request.h"
#include "server/api-response.h"
#include "server/auth.h"
#include "server/completion.h"
#include "server/engine-loop.h"
#include "server/metrics.h"
#include "upg/core/error.h"
#include "upg/server/server.h"

namespace upg::server {

namespace {

using Clock = std::chrono::steady_clock;

// When the request this thread handles arrived: httplib runs a request's routing, handler,
// response writing and logger on one thread, so the log line can tell how long it took.
thread_local Clock::time_point request_start;

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status(), e.body()); }

// What a client is told of an exception: an ApiError as it is, anything else (a bug) a 500.
ApiError as_api_error(std::exception_ptr ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const ApiError& e) {
    return e;
  } catch (const std::exception& e) {
    return ApiError(500, fmt::format("internal error: {}", e.what()), {}, "server_error");
  } catch (...) {
    return ApiError(500, "internal error", {}, "server_error");
  }
}

// The label /metrics counts a path under: the routes, and one label for the rest, so a
// scan of random paths cannot grow the metric without bound.
std::string endpoint_label(const std::string& path) {
  for (const char* p : {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics"})
    if (path == p) return path;
  return "other";
}

}  // namespace

struct Server::Impl {
  ServerOptions opt;
  httplib::Server http;
  std::thread listener;
  Metrics metrics;

  // Set once by attach(); read by the handlers after they see `ready`.
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};
  std::atomic<bool> stopped{false};
  Model* model = nullptr;
  std::unique_ptr<EngineLoop> loop;
  std::unique_ptr<CompletionContext> ctx;
  RequestLimits limits;

  std::atomic<int> admitted{0};   // engine requests of the completions in flight
  std::atomic<int> in_flight{0};  // completions in flight (until their response is written)
  std::atomic<uint64_t> serial{0};

  explicit Impl(ServerOptions o) : opt(std::move(o)) {}

  void routes();
  void cors_routes();
  void completions(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);
};

namespace {

// Holds a completion's place in the queue until its response is written.
struct Admission {
  Admission(std::atomic<int>& admitted, std::atomic<int>& in_flight, int n)
      : admitted_(admitted), in_flight_(in_flight), n_(n) {
    ++in_flight_;
  }
  ~Admission() {
    admitted_ -= n_;
    --in_flight_;
  }
  std::atomic<int>& admitted_;
  std::atomic<int>& in_flight_;
  int n_;
};

}  // namespace

void Server::Impl::completions(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
  const Clock::time_point arrival = Clock::now();
  if (opt.log_prompts) fmt::print(stderr, "upg: serve: {} body: {}\n", req.path, req.body);
  if (!ready) throw ApiError(503, "the model is still loading", {}, "server_error");
  ApiRequest ar = parse_request(req.body, endpoint, limits);
  if (!ar.model.empty() && ar.model != ctx->model_id)
    throw ApiError(404, fmt::format("the model '{}' does not exist (this server has '{}')", ar.model, ctx->model_id),
                   "model", "invalid_request_error", "model_not_found");
  const int want = ar.n * (endpoint == Endpoint::kChat ? 1 : int(ar.prompts.size()));
  if (want > opt.max_queue)
    throw ApiError(400, fmt::format("n: {} choices are more than this server admits at once ({})", want, opt.max_queue),
                   "n");
  if (admitted.fetch_add(want) + want > opt.max_queue) {
    admitted -= want;
    res.set_header("Retry-After", "1");
    throw ApiError(429, "the server is busy: too many requests in its queue; retry later", {}, "rate_limit_error",
                   "rate_limit_exceeded");
  }
  auto admission = std::make_shared<Admission>(admitted, in_flight, want);
  auto completion = std::make_shared<Completion>(*ctx, std::move(ar), arrival, serial++);
  // Both kinds of response wait for their tokens in a content provider, not in this
  // handler: only a provider can see whether the client is still there (DataSink::is_writable
  // peeks at the socket; cpp-httplib 0.11 offers nothing else), and a client that goes
  // away must cancel its request and free its KV blocks then, not when its response is
  // written. Nothing may leave a provider (httplib's worker would end the process).
  if (!completion->streaming()) {
    // The headers (200, chunked) go before the result. An error after them (the engine
    // failed) is written as the body, and the response is cut short (no last chunk), so
    // that a client reads a failed transfer rather than a success.
    res.set_chunked_content_provider(
        "application/json",
        [completion, admission](size_t, httplib::DataSink& sink) {
          std::string body;
          bool ok = true;
          try {
            std::optional<nlohmann::json> r = completion->collect([&sink] { return sink.is_writable(); });
            if (!r) return false;  // the client went away: cancelled
            body = dump_json(*r);
          } catch (...) {
            body = dump_json(as_api_error(std::current_exception()).body());
            ok = false;
          }
          ok = sink.write(body.data(), body.size()) && ok;
          if (ok) sink.done();
          return ok;
        },
        [completion, admission](bool) {});
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [completion, admission](size_t, httplib::DataSink& sink) {
        bool ok = false;
        try {
          ok = completion->stream([&](std::string_view s) { return sink.write(s.data(), s.size()); },
                                  [&sink] { return sink.is_writable(); });
        } catch (...) {
          // The headers are gone: the error goes in the stream, as OpenAI sends one.
          const std::string ev = sse_event(as_api_error(std::current_exception()).body());
          sink.write(ev.data(), ev.size());
        }
        if (ok) sink.done();
        return ok;
      },
      [completion, admission](bool) {});
}

// CORS only when asked: the allowed origin on every response (errors too, so that a page
// can read them), and preflights answered for any path.
void Server::Impl::cors_routes() {
  if (opt.cors_origins.empty()) return;
  const bool any = std::find(opt.cors_origins.begin(), opt.cors_origins.end(), "*") != opt.cors_origins.end();
  http.set_post_routing_handler([this, any](const httplib::Request& req, httplib::Response& res) {
    const std::string origin = req.get_header_value("Origin");
    if (any) {
      res.set_header("Access-Control-Allow-Origin", "*");
    } else if (std::find(opt.cors_origins.begin(), opt.cors_origins.end(), origin) != opt.cors_origins.end()) {
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Vary", "Origin");
    }
  });
  http.Options(".*", [](const httplib::Request&, httplib::Response& res) {
    res.status = 204;
    res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
    res.set_header("Access-Control-Max-Age", "600");
  });
}

void Server::Impl::routes() {
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_start = Clock::now();
    if (req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    // A browser's preflight carries no credentials; what it asks about still needs them.
    if (req.method == "OPTIONS" && !opt.cors_origins.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (!opt.api_keys.empty() && !authorized(req.get_header_value("Authorization"), opt.api_keys)) {
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, ApiError(401, "missing or incorrect API key (send Authorization: Bearer <key>)", {},
                               "invalid_request_error", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (draining && req.method == "POST") {
      res.set_header("Connection", "close");
      send_error(res, ApiError(503, "the server is shutting down", {}, "server_error"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining)
      send_json(res, 503, {{"status", "shutting down"}});
    else if (!ready)
      send_json(res, 503, {{"status", "loading"}});
    else
      send_json(res, 200, {{"status", "ok"}});
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::string text;
    if (ready) {
      const EngineStats s = loop->stats();
      EngineGauges g{s.running,       s.waiting,          s.kv_blocks_used, s.kv_blocks_free, s.prompt_tokens,
                     s.generated_tokens, s.preemptions, s.drafted_tokens, s.accepted_tokens};
      text = metrics.render(&g);
    } else {
      text = metrics.render(nullptr);
    }
    res.set_content(text, "text/plain; version=0.0.4");
  });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    if (!ready) throw ApiError(503, "the model is still loading", {}, "server_error");
    send_json(res, 200, model_list(ctx->model_id, 0));
  });
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& req, httplib::Response& res) { completions(req, res, Endpoint::kChat); });
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    completions(req, res, Endpoint::kCompletions);
  });
  // Handlers throw ApiError for every refusal; anything else is a bug, answered 500
  // rather than ending the process.
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    send_error(res, as_api_error(ep));
  });
  // What httplib answers itself (unknown path, body too large, a bad request line) gets
  // an OpenAI error body too.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string msg = res.status == 404   ? fmt::format("unknown path {}", req.path)
                      : res.status == 413 ? std::string("request body too large")
                      : res.status == 405 ? std::string("method not allowed")
                                          : fmt::format("HTTP {}", res.status);
    send_error(res, ApiError(res.status, msg));
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics.count_request(endpoint_label(req.path), res.status);
    // Requests httplib refuses before routing (413, a bad request line) have no start.
    const std::string took = request_start == Clock::time_point{} ? std::string("-") :
        fmt::format("{:.3f} s", std::chrono::duration<double>(Clock::now() - request_start).count());
    request_start = {};
    if (opt.log_requests)
      fmt::print(stderr, "upg: serve: {} {} {} {} {}\n", req.remote_addr, req.method, req.path, res.status, took);
  });
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& I = *impl_;
  // Every streamed response holds a thread while it streams: enough for a full queue,
  // plus some for health checks, metrics and the requests turned away.
  const size_t threads = size_t(I.opt.max_queue) + 16;
  I.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  I.http.set_payload_max_length(I.opt.max_body_bytes);
  I.http.set_read_timeout(I.opt.io_timeout);
  I.http.set_write_timeout(I.opt.io_timeout);
  I.http.set_tcp_nodelay(true);  // a streamed token is a small write that should leave now
  I.limits.max_n = I.opt.max_n;
  I.routes();
  I.cors_routes();
}

Server::~Server() { shutdown(std::chrono::milliseconds(0)); }

int Server::bind() {
  Impl& I = *impl_;
  const int port = I.opt.port == 0 ? I.http.bind_to_any_port(I.opt.host) : (I.http.bind_to_port(I.opt.host, I.opt.port) ? I.opt.port : -1);
  if (port <= 0) throw Error(fmt::format("serve: cannot listen on {}:{}", I.opt.host, I.opt.port));
  return port;
}

void Server::start() {
  Impl& I = *impl_;
  I.listener = std::thread([&I] { I.http.listen_after_bind(); });
}

void Server::attach(Model& model, Engine& engine, std::string model_id) {
  Impl& I = *impl_;
  I.model = &model;
  I.loop = std::make_unique<EngineLoop>(engine);
  I.limits.context_length = model.context_length();
  I.limits.vocab_size = model.config().vocab_size;
  I.ctx = std::make_unique<CompletionContext>(
      CompletionContext{model.tokenizer(), *I.loop, I.metrics, std::move(model_id), model.context_length(),
                        I.opt.request_timeout});
  I.ready = true;
}

void Server::shutdown(std::chrono::milliseconds grace) {
  Impl& I = *impl_;
  if (I.stopped.exchange(true)) return;
  I.draining = true;
  auto wait_idle = [&I](Clock::duration d) {
    const Clock::time_point until = Clock::now() + d;
    while (I.in_flight > 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  };
  wait_idle(grace);
  if (I.in_flight > 0 && I.loop) {
    I.loop->cancel_all();  // the clients see finish_reason "abort"
    wait_idle(std::chrono::seconds(5));
  }
  I.http.stop();
  if (I.listener.joinable()) I.listener.join();
  if (I.loop) I.loop->stop();
}

}  // namespace upg::server
