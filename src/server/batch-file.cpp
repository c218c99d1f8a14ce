#include "server/batch-file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/core/json.h"

namespace upg::server {

using nlohmann::json;

std::string batch_key(const json& id) {
  if (id.is_string()) return id.get<std::string>();
  if (id.is_number_integer()) return id.dump();
  throw bad_field("id", "must be a string or an integer");
}

BatchLine parse_batch_line(std::string_view line, const RequestLimits& limits) {
  nlohmann::ordered_json body;
  try {
    body = parse_json<nlohmann::ordered_json>(line, "line");
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
  if (!body.is_object()) throw ApiError(400, "line: must be a JSON object");
  auto it = body.find("id");
  if (it == body.end() || it->is_null()) throw bad_field("id", "missing: every line needs an id");
  BatchLine out;
  out.key = batch_key(*it);
  out.id = *it;
  body.erase(it);
  try {
    const bool chat = body.contains("messages");
    if (chat == body.contains("prompt")) throw ApiError(400, "a line needs either \"messages\" or \"prompt\"");
    if (auto s = body.find("stream"); s != body.end() && s->is_boolean() && s->get<bool>())
      throw bad_field("stream", "not available in a batch");
    out.request = parse_request_body(body, chat ? Endpoint::kChat : Endpoint::kCompletions, limits);
  } catch (const ApiError& e) {
    throw BatchLineError(e, out.id);
  }
  return out;
}

Record result_record(const json& id, const json& response) {
  const json& choices = response.at("choices");
  auto text_of = [](const json& c) {
    return c.contains("message") ? c["message"].value("content", std::string()) : c.value("text", std::string());
  };
  const json& first = choices.at(0);
  Record r = {{"id", id},
            {"text", text_of(first)},
            {"finish_reason", first.at("finish_reason")},
            {"prompt_tokens", response.at("usage").at("prompt_tokens")},
            {"completion_tokens", response.at("usage").at("completion_tokens")}};
  if (choices.size() > 1) {
    Record all = Record::array();
    for (const json& c : choices)
      all.push_back(Record{{"text", text_of(c)}, {"finish_reason", c.at("finish_reason")}});
    r["choices"] = std::move(all);
  }
  return r;
}

Record error_record(const json& id, int64_t line_no, const ApiError& e) {
  Record err = {{"message", e.what()}, {"type", e.type()}, {"param", nullptr}};
  if (!e.param().empty()) err["param"] = e.param();
  return Record{{"id", id}, {"line", line_no}, {"error", std::move(err)}};
}

BatchDone resume_batch_output(const std::string& path) {
  BatchDone done;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return done;
    throw Error(fmt::format("{}: cannot read: {}", path, std::strerror(errno)));
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const size_t whole = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  if (whole < text.size() && ::truncate(path.c_str(), off_t(whole)) != 0)
    throw Error(fmt::format("{}: cannot cut its unfinished last line: {}", path, std::strerror(errno)));
  int64_t line_no = 0;
  for (size_t pos = 0; pos < whole;) {
    const size_t end = text.find('\n', pos);
    const std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.empty()) continue;
    json r;
    try {
      r = parse_json(line, "record");
    } catch (const Error& e) {
      throw Error(fmt::format("{}:{}: not a batch record: {}", path, line_no, e.what()));
    }
    const json* id = r.is_object() && r.contains("id") ? &r["id"] : nullptr;
    if (id && (id->is_string() || id->is_number_integer()))
      done.ids.insert(batch_key(*id));
    else if (id && id->is_null() && r.contains("line") && r["line"].is_number_integer())
      done.lines.insert(r["line"].get<int64_t>());
    else
      throw Error(fmt::format("{}:{}: not a batch record (no id)", path, line_no));
  }
  return done;
}

BatchWriter::BatchWriter(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(fmt::format("{}: cannot open for writing: {}", path, std::strerror(errno)));
}

BatchWriter::~BatchWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void BatchWriter::write(const Record& record) {
  // One write() of the whole line: a process killed around it leaves the line whole or
  // absent (resume_batch_output cuts what a crash of the machine might leave).
  const std::string line = record.dump(-1, ' ', false, Record::error_handler_t::replace) + "\n";
  const ssize_t n = ::write(fd_, line.data(), line.size());
  if (n != ssize_t(line.size()))
    throw Error(fmt::format("{}: write failed: {}", path_, n < 0 ? std::strerror(errno) : "short write"));
}

}  // namespace upg::server
