#pragma once
// `upg grammar bench`: MaskBench's measurement (github.com/guidance-ai/jsonschemabench,
// maskbench/) over a folder of its files, with our engine in process. Per schema: compile
// (timed), then per test instance a fresh matcher fed the instance's tokens, each one
// timed as mask + accept, as MaskBench's runner does. An instance counts as accepted
// when every token and then a stop token are accepted (MaskBench stops at the last
// token, so it would take a valid prefix of an object for the object).
#include <cstdint>
#include <string>
#include <vector>

#include "upg/grammar/grammar.h"

namespace upg {
class Tokenizer;
}

namespace upg::cli {

enum class SchemaOutcome { kPassing, kUnsupported, kValidRejected, kInvalidAccepted, kCrash, kTimeout, kMaskMismatch };
const char* outcome_name(SchemaOutcome o);  // as MaskBench's counts name them; "mask_mismatch" is ours

struct SchemaResult {
  std::string file;
  SchemaOutcome outcome = SchemaOutcome::kPassing;
  std::string detail;  // the compile error, or which test failed
  double compile_us = 0;
  double first_mask_us = 0;  // compile plus a fresh matcher's first mask: a new schema's wait
  int tests = 0;
};

struct BenchResult {
  std::vector<SchemaResult> schemas;
  std::vector<double> mask_us;  // every token of every test
  int64_t tokens = 0;
};

// Runs every MaskBench file (*.json with "schema" and "tests") in `dir`, sorted by name.
// A schema whose tests run past time_limit_s stops there and counts as a timeout.
// Properties in the schema's order, as MaskBench's instances give them. `jobs` threads
// take the files in turn (the compiler is shared; results come in file order either way);
// more than one makes the run quicker and its timings noisier. `reference`, when given:
// each schema compiled by it too (untimed), its matcher fed the same tokens, and the two
// masks compared before every token (a difference: kMaskMismatch); a compiler that shares
// nothing between grammars checks that the masks reused across grammars are the ones
// computed afresh.
BenchResult run_maskbench(GrammarCompiler& compiler, const Tokenizer& tok, int32_t stop_token,
                          const std::string& dir, double time_limit_s, int jobs = 1,
                          GrammarCompiler* reference = nullptr);

// Nearest-rank percentile (q in [0, 1]) of `v` (sorted in place); 0 when empty.
double percentile(std::vector<double>& v, double q);

}  // namespace upg::cli
