#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <ostream>
#include <string>
#include <utility>

#include <unistd.h>

namespace siamese {

/// How far a long job has come, as a ProgressCallback sees it.
struct ProgressReport {
  std::string task;              ///< what is being done: "embedding", "fine-tuning"
  std::string unit;              ///< what is counted: "images", "steps"
  std::size_t done = 0;
  std::size_t total = 0;         ///< 0 when not known
  double elapsed_seconds = 0.0;  ///< since the task started
  std::string note;              ///< the task's own state ("epoch 2, loss 0.1234"); may be empty

  /// Units per second so far (0 before any time has passed).
  double rate() const { return elapsed_seconds > 0.0 ? static_cast<double>(done) / elapsed_seconds : 0.0; }
  /// Seconds left at the rate so far; negative when not known.
  double eta_seconds() const {
    return total > 0 && done > 0 ? elapsed_seconds / static_cast<double>(done) * static_cast<double>(total - std::min(done, total))
                                 : -1.0;
  }
  bool finished() const { return total > 0 && done >= total; }
};

/// Told after every unit (or batch of units) of a long job. Library functions that take one
/// call it on their own thread; it should be cheap, or throttle itself as ProgressPrinter does.
using ProgressCallback = std::function<void(const ProgressReport&)>;

/// Counts the work of one task and tells `callback` (which may be empty) after each advance.
class ProgressCounter {
 public:
  ProgressCounter(ProgressCallback callback, std::string task, std::string unit, std::size_t total)
      : callback_(std::move(callback)), start_(std::chrono::steady_clock::now()) {
    report_.task = std::move(task);
    report_.unit = std::move(unit);
    report_.total = total;
  }

  /// `units` more are done; `note` replaces the task's state line.
  void advance(std::size_t units = 1, std::string note = {}) {
    if (!callback_) return;
    report_.done += units;
    report_.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    report_.note = std::move(note);
    callback_(report_);
  }

  const ProgressReport& report() const { return report_; }

 private:
  ProgressCallback callback_;
  std::chrono::steady_clock::time_point start_;
  ProgressReport report_;
};

/// "4 s", "2 min 05 s", "1 h 03 min".
inline std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(std::llround(std::max(0.0, seconds)));
  char text[32];
  if (s < 60) std::snprintf(text, sizeof text, "%lld s", s);
  else if (s < 3600) std::snprintf(text, sizeof text, "%lld min %02lld s", s / 60, s % 60);
  else std::snprintf(text, sizeof text, "%lld h %02lld min", s / 3600, s % 3600 / 60);
  return text;
}

/// One line for a report: "embedding: 120/7701 images (1%), 52.3 images/s, ETA 2 min 25 s",
/// "... done in 2 min 27 s" when finished, without the total where it is unknown, and the
/// note, if any, after a semicolon.
inline std::string format_progress(const ProgressReport& r) {
  char text[160];
  std::string line = r.task + ": " + std::to_string(r.done);
  if (r.total > 0) {
    std::snprintf(text, sizeof text, "/%zu %s (%d%%)", r.total, r.unit.c_str(),
                  static_cast<int>(100.0 * static_cast<double>(r.done) / static_cast<double>(r.total)));
  } else {
    std::snprintf(text, sizeof text, " %s", r.unit.c_str());
  }
  line += text;
  std::snprintf(text, sizeof text, ", %.1f %s/s", r.rate(), r.unit.c_str());
  line += text;
  if (r.finished()) line += ", done in " + format_duration(r.elapsed_seconds);
  else if (r.eta_seconds() >= 0.0) line += ", ETA " + format_duration(r.eta_seconds());
  if (!r.note.empty()) line += "; " + r.note;
  return line;
}

/// A ProgressCallback that prints reports as text. On a terminal: one line rewritten in place
/// (at most ten times a second) and ended when the task finishes. Elsewhere (logs, CI): a plain
/// line every `every_seconds`, at every `every_percent` of the total, and when the task
/// finishes. Tasks that finish within `quiet_seconds` print nothing. Times are the reports'
/// own, so the output depends on nothing but the reports. Copies share their state.
class ProgressPrinter {
 public:
  ProgressPrinter(std::ostream& out, bool terminal, double every_seconds = 10.0, int every_percent = 10,
                  double quiet_seconds = 2.0)
      : state_(std::make_shared<State>(Settings{&out, terminal, every_seconds, every_percent, quiet_seconds})) {}

  void operator()(const ProgressReport& r) const {
    auto& s = *state_;
    const auto& how = s.settings;
    if (r.task != s.task || r.elapsed_seconds < s.last_printed) s = State(how, r.task);  // a new task
    if (r.elapsed_seconds < how.quiet_seconds && !(r.finished() && s.printed)) return;
    const int percent = r.total > 0 ? static_cast<int>(100 * r.done / r.total) : 0;
    const bool due = how.terminal ? r.elapsed_seconds - s.last_printed >= 0.1
                                  : !s.printed || r.elapsed_seconds - s.last_printed >= how.every_seconds ||
                                        (how.every_percent > 0 && percent / how.every_percent > s.last_percent / how.every_percent);
    if (!due && !r.finished()) return;
    if (r.finished() && s.finished) return;
    if (how.terminal) {
      *how.out << '\r' << format_progress(r) << "\033[K" << (r.finished() ? "\n" : "") << std::flush;
    } else {
      *how.out << format_progress(r) << '\n' << std::flush;
    }
    s.printed = true;
    s.finished = r.finished();
    s.last_printed = r.elapsed_seconds;
    s.last_percent = percent;
  }

 private:
  struct Settings {
    std::ostream* out;
    bool terminal;
    double every_seconds;
    int every_percent;
    double quiet_seconds;
  };
  struct State {
    explicit State(Settings how, std::string task_name = {}) : settings(how), task(std::move(task_name)) {}
    Settings settings;
    std::string task;
    bool printed = false;
    bool finished = false;
    double last_printed = 0.0;
    int last_percent = 0;
  };
  std::shared_ptr<State> state_;
};

/// Progress on standard error: in place when it is a terminal, plain lines otherwise.
inline ProgressCallback stderr_progress() { return ProgressPrinter(std::cerr, ::isatty(STDERR_FILENO) == 1); }

}  // namespace siamese
