#include <kiln/autograd/grad_mode.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace kiln {

namespace {
thread_local bool grad_enabled = true;

bool anomaly_from_env() {
  const char* env = std::getenv("KILN_DETECT_ANOMALY");
  return env != nullptr && std::strcmp(env, "0") != 0 && env[0] != '\0';
}
std::atomic<bool>& anomaly_flag() {
  static std::atomic<bool> flag{anomaly_from_env()};
  return flag;
}
}  // namespace

bool GradMode::is_enabled() { return grad_enabled; }
void GradMode::set_enabled(bool enabled) { grad_enabled = enabled; }

void set_detect_anomaly(bool enabled) { anomaly_flag() = enabled; }
bool is_anomaly_enabled() { return anomaly_flag(); }

}  // namespace kiln
