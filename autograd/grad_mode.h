// Whether ops record the graph (per thread), and anomaly detection.
#pragma once

namespace kiln {

/// Whether ops record the graph, per thread (on by default). NoGradGuard is the usual way to
/// turn it off.
struct GradMode {
  /// True when ops on this thread record the graph.
  static bool is_enabled();
  /// Turns recording on or off for this thread.
  static void set_enabled(bool enabled);
};

/// Disables graph recording in this scope: `{ NoGradGuard g; param.copy_(other); }`.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

/// Re-enables graph recording in this scope.
class EnableGradGuard {
 public:
  EnableGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(true); }
  ~EnableGradGuard() { GradMode::set_enabled(previous_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool previous_;
};

/// When on, every op checks its forward outputs and its backward gradients for NaN and Inf, and
/// the first op that makes one throws kiln::Error naming it. Off by default (it costs a pass over
/// every tensor); KILN_DETECT_ANOMALY=1 turns it on at start-up.
void set_detect_anomaly(bool enabled);
/// Whether anomaly detection is on.
bool is_anomaly_enabled();

}  // namespace kiln
