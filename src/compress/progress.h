#pragma once
// Per-tensor progress on stderr: a redrawn bar on a terminal, one plain line per tensor
// otherwise (so logs and CI output stay readable).
#include <chrono>
#include <cstdio>
#include <string>

namespace upg::compress {

class Progress {
 public:
  // `tty` < 0: detect from the stream; 0 / 1 force line or bar mode (tests).
  explicit Progress(int total, std::FILE* out = stderr, int tty = -1);
  // Tensor `done` of total (1-based) is being processed.
  void step(int done, const std::string& label);
  void finish();  // ends the bar line
  bool tty() const { return tty_; }

  static std::string bar(int done, int total, int width);  // "[#####     ]"

 private:
  int total_;
  std::FILE* out_;
  bool tty_;
  bool open_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace upg::compress
