#pragma once
// `upg batch`'s files: JSON Lines in, JSON Lines out. An input line is an OpenAI request
// body plus an "id": "messages" makes it a chat completion, "prompt" a completion, and
// every other field is checked as the server checks it (parse_request). An output line
// is a result record or an error record, each one whole line written with one write(),
// so that a run killed at any point leaves whole lines, and a rerun that finds the output
// file skips what it already holds.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "server/api-request.h"

namespace upg::server {

struct BatchLine {
  nlohmann::json id;  // as given: a string or an integer, echoed in the record
  std::string key;    // the id as text, for resuming
  ApiRequest request;
};

// The id as text ("7" for 7): how records are matched on a rerun. Throws ApiError for
// other types.
std::string batch_key(const nlohmann::json& id);

// Parses one input line. Throws ApiError naming the field; a line whose id could be read
// carries it in the error (BatchLineError).
BatchLine parse_batch_line(std::string_view line, const RequestLimits& limits);

// The id of a line parse_batch_line refused, when the line had one.
struct BatchLineError : ApiError {
  BatchLineError(const ApiError& e, nlohmann::json id) : ApiError(e), id(std::move(id)) {}
  nlohmann::json id;
};

// Records keep their keys in this order (id first), for people reading the file.
using Record = nlohmann::ordered_json;
// {"id", "text", "finish_reason", "prompt_tokens", "completion_tokens"} from a whole
// response (collect()); with n > 1 also "choices": [{"text", "finish_reason"}, ...].
Record result_record(const nlohmann::json& id, const nlohmann::json& response);
// {"id" (null when the line had none), "line", "error": {"message", "type", "param"}}.
Record error_record(const nlohmann::json& id, int64_t line_no, const ApiError& e);

// What an existing output file already holds: the keys of its records' ids, and the
// line numbers of its error records without an id. A last line without its newline (a run
// killed mid-write) is cut off the file first, so appending starts on a line boundary.
// A missing file is empty; an unreadable record is an upg::Error naming file and line.
struct BatchDone {
  std::unordered_set<std::string> ids;
  std::unordered_set<int64_t> lines;
};
BatchDone resume_batch_output(const std::string& path);

// Appends records to an output file, each with a single write() of the whole line.
class BatchWriter {
 public:
  explicit BatchWriter(const std::string& path);  // created if missing, appended to
  ~BatchWriter();
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;
  void write(const Record& record);  // throws upg::Error naming the file

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace upg::server
