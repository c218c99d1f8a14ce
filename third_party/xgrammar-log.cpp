// XGrammar's logging hooks (built with XGRAMMAR_LOG_CUSTOMIZE=1, CMakeLists.txt). Its
// warnings go to stderr from inside a server or a benchmark loop, one per masked special
// token or per schema keyword it skips; src/grammar refuses those schemas before they
// reach XGrammar and reports everything else as upg::Error, so the warnings are dropped.
// Fatal errors throw the type XGrammar's own code catches (support/json_parse.h).
#include "support/logging.h"

namespace xgrammar {

[[noreturn]] void LogFatalImpl(const std::string& file, int lineno, const std::string& message) {
  throw LogFatalError(file, lineno, message);
}

void LogMessageImpl(const std::string&, int, int, const std::string&) {}

}  // namespace xgrammar
