// Running code in a forked child and reading what it writes to stderr, for the tests that must
// watch a process die (a sanitizer report) or run under limits the test runner must not share (a
// file size limit).
#pragma once

#include <functional>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

namespace kiln::testing {

/// How a child ended: its wait status, and everything it wrote to stderr.
struct ChildResult {
  int status = 0;
  std::string stderr_text;

  bool exited_cleanly() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};

/// Forks; the child sends its stderr into a pipe and runs `body`, which should end the process
/// (with _exit or exec; a child whose body returns exits with 0). The parent reads the pipe to
/// its end, then waits for the child.
inline ChildResult run_in_child(const std::function<void()>& body) {
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    ::dup2(pipe_fds[1], STDERR_FILENO);
    body();
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  ChildResult result;
  char buffer[4096];
  for (ssize_t got; (got = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;)
    result.stderr_text.append(buffer, static_cast<size_t>(got));
  ::close(pipe_fds[0]);
  REQUIRE(::waitpid(child, &result.status, 0) == child);
  return result;
}

}  // namespace kiln::testing
