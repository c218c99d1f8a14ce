#include "cli/grammar-bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "upg/core/error.h"
#include "upg/core/file-text.h"
#include "upg/core/json.h"
#include "upg/tokenizer/tokenizer.h"

namespace upg::cli {
namespace {

using Clock = std::chrono::steady_clock;
double us_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

}  // namespace

const char* outcome_name(SchemaOutcome o) {
  switch (o) {
    case SchemaOutcome::kPassing: return "passing";
    case SchemaOutcome::kUnsupported: return "unsupported";
    case SchemaOutcome::kValidRejected: return "validation_error";
    case SchemaOutcome::kInvalidAccepted: return "invalidation_error";
    case SchemaOutcome::kCrash: return "crash";
    case SchemaOutcome::kTimeout: return "timeout";
    case SchemaOutcome::kMaskMismatch: return "mask_mismatch";
  }
  return "?";
}

double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = size_t(std::ceil(q * double(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

namespace {

// One MaskBench file: compile its schema, then each test instance token by token (its
// mask + accept times appended to mask_us). nullopt: not a MaskBench file.
std::optional<SchemaResult> run_schema(GrammarCompiler& compiler, GrammarCompiler* reference, const Tokenizer& tok,
                                       int32_t stop_token, const std::filesystem::path& path, double time_limit_s,
                                       std::vector<double>& mask_us) {
  // Ordered: an instance's properties stay in the order its file gives them.
  const auto doc = parse_json<nlohmann::ordered_json>(read_file_text(path.string(), "a MaskBench file", size_t(64) << 20), path.string());
  if (!doc.is_object() || !doc.contains("schema") || !doc.contains("tests") || !doc["tests"].is_array()) return std::nullopt;
  SchemaResult r;
  r.file = path.filename().string();
  const auto t_start = Clock::now();
  std::shared_ptr<const CompiledGrammar> g, ref;
  GrammarSpec spec{GrammarKind::kJsonSchema, doc["schema"].dump()};
  // Instances as written by others: any whitespace, and JSON Schema's own defaults.
  spec.any_whitespace = true;
  spec.strict = false;
  try {
    g = compiler.compile(spec);
    r.compile_us = us_since(t_start);
  } catch (const Error& e) {
    r.outcome = SchemaOutcome::kUnsupported;
    r.detail = e.what();
    return r;
  }
  std::vector<uint32_t> mask;
  {
    GrammarMatcher first(g);
    mask.assign(size_t(first.mask_words()), 0);
    first.fill_mask(mask);
    r.first_mask_us = us_since(t_start);
  }
  if (reference) ref = reference->compile(spec);  // after the timings above
  std::vector<uint32_t> ref_mask;
  const auto& tests = doc["tests"];
  for (size_t i = 0; i < tests.size() && r.outcome == SchemaOutcome::kPassing; ++i) {
    const bool valid = tests[i].value("valid", false);
    ++r.tests;
    try {
      GrammarMatcher m(g);
      std::optional<GrammarMatcher> rm;
      if (ref) rm.emplace(ref);
      mask.assign(size_t(m.mask_words()), 0);
      ref_mask.assign(mask.size(), 0);
      const auto ids = tok.encode(tests[i]["data"].dump(), false, false);
      bool accepted = true;
      for (size_t k = 0; k < ids.size() && r.outcome == SchemaOutcome::kPassing; ++k) {
        const auto t0 = Clock::now();
        m.fill_mask(mask);
        const bool ok = m.accept(ids[k]);
        mask_us.push_back(us_since(t0));
        if (rm) {
          rm->fill_mask(ref_mask);
          if (ref_mask != mask) {
            r.outcome = SchemaOutcome::kMaskMismatch;
            r.detail = fmt::format("test #{}: the masks before token #{} differ from the reference compiler's", i, k);
          }
          rm->accept(ids[k]);
        }
        if (!ok) {
          accepted = false;
          break;
        }
      }
      if (r.outcome != SchemaOutcome::kPassing) break;
      if (accepted) accepted = m.accept(stop_token);
      if (accepted != valid) {
        r.outcome = valid ? SchemaOutcome::kValidRejected : SchemaOutcome::kInvalidAccepted;
        r.detail = fmt::format("test #{}: should {} but didn't", i, valid ? "accept" : "reject");
      }
    } catch (const std::exception& e) {
      r.outcome = SchemaOutcome::kCrash;
      r.detail = fmt::format("test #{}: {}", i, e.what());
    }
    if (r.outcome == SchemaOutcome::kPassing && us_since(t_start) > time_limit_s * 1e6) {
      r.outcome = SchemaOutcome::kTimeout;
      r.detail = fmt::format("over {} s after test #{}", time_limit_s, i);
    }
  }
  return r;
}

}  // namespace

BenchResult run_maskbench(GrammarCompiler& compiler, const Tokenizer& tok, int32_t stop_token,
                          const std::string& dir, double time_limit_s, int jobs, GrammarCompiler* reference) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  // Each worker takes the next file; results keep the files' order whatever the timing.
  std::vector<std::optional<SchemaResult>> results(files.size());
  std::vector<std::vector<double>> mask_us(size_t(std::max(jobs, 1)));
  std::vector<std::exception_ptr> errors(mask_us.size());
  std::atomic<size_t> next{0};
  auto work = [&](size_t w) {
    try {
      for (size_t i; (i = next++) < files.size();)
        results[i] = run_schema(compiler, reference, tok, stop_token, files[i], time_limit_s, mask_us[w]);
    } catch (...) {  // a file that is not JSON: the run fails, as with one thread
      errors[w] = std::current_exception();
      next = files.size();
    }
  };
  std::vector<std::thread> workers;
  for (size_t w = 1; w < mask_us.size(); ++w) workers.emplace_back(work, w);
  work(0);
  for (std::thread& t : workers) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  BenchResult out;
  for (std::optional<SchemaResult>& r : results)
    if (r) out.schemas.push_back(std::move(*r));
  for (const std::vector<double>& m : mask_us) out.mask_us.insert(out.mask_us.end(), m.begin(), m.end());
  out.tokens = int64_t(out.mask_us.size());
  return out;
}

}  // namespace upg::cli
