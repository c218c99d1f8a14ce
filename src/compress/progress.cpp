#include "compress/progress.h"

#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

namespace upg::compress {

Progress::Progress(int total, std::FILE* out, int tty)
    : total_(std::max(total, 0)), out_(out), tty_(tty < 0 ? isatty(fileno(out)) != 0 : tty != 0),
      start_(std::chrono::steady_clock::now()) {}

std::string Progress::bar(int done, int total, int width) {
  const int filled = total > 0 ? int(int64_t(std::clamp(done, 0, total)) * width / total) : width;
  return "[" + std::string(size_t(filled), '#') + std::string(size_t(width - filled), ' ') + "]";
}

std::string Progress::eta(double elapsed_s, int done, int total) {
  if (done <= 0 || done >= total) return "";
  return fmt::format(" ETA {:.0f}s", elapsed_s / done * (total - done));
}

void Progress::step(int done, const std::string& label) {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (tty_) {
    // \x1b[K clears what a longer previous label left on the line.
    fmt::print(out_, "\r{} {}/{} {:.0f}s{} {}\x1b[K", bar(done, total_, 30), done, total_, s, eta(s, done, total_),
               label);
    open_ = true;
  } else {
    fmt::print(out_, "{}/{} {:.1f}s{} {}\n", done, total_, s, eta(s, done, total_), label);
  }
  std::fflush(out_);
}

void Progress::finish() {
  if (open_) fmt::print(out_, "\n");
  open_ = false;
  std::fflush(out_);
}

}  // namespace upg::compress
