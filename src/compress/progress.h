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
  // `done` of total (1-based): a layer just finished, or a tensor being written. The
  // line shows the time so far and, from the rate so far, the time left.
  void step(int done, const std::string& label);
  void finish();  // ends the bar line
  bool tty() const { return tty_; }

  static std::string bar(int done, int total, int width);  // "[#####     ]"
  // " ETA 12s": the rest at the rate of the first `done` (empty before any or at the end).
  static std::string eta(double elapsed_s, int done, int total);

 private:
  int total_;
  std::FILE* out_;
  bool tty_;
  bool open_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace upg::compress
