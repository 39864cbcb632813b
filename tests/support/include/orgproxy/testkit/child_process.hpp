// Child processes for tests (nginx, the orgproxy daemon, curl, softhsm2-util): started with a chosen
// environment, output captured, and always killed at the end, even when an assertion fails.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace orgproxy::testkit {

/// Environment entries added to (or overriding) the current process's environment: {name, value}.
using EnvVars = std::vector<std::pair<std::string, std::string>>;

/// What to run. argv[0] is a path or a program name looked up in $PATH (before forking).
struct ProcessSpec {
  std::vector<std::string> argv;
  EnvVars env;
  std::string log_file;     ///< stdout and stderr appended here; "" = /dev/null
  std::string working_dir;  ///< "" = the current directory
};

/// A running child process in its own process group.
///
/// Started with fork + immediate execve: between the two only async-signal-safe calls (setpgid, prctl,
/// open, dup2, chdir), so it is safe after a PKCS#11 module was initialised in this process (the child
/// never runs the parent's module code). The child gets PR_SET_PDEATHSIG=SIGKILL, so it dies with the test
/// process even if that one crashes; note that Linux sends it when the *thread* that started the child
/// exits, so start children from a thread that outlives them (the test's main thread).
/// Destruction stops it: SIGTERM to the group, SIGKILL after a grace of 5 s.
/// Throws std::runtime_error if the program is not found or fork fails.
class ChildProcess {
 public:
  explicit ChildProcess(ProcessSpec spec);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  /// True until the child has exited (reaps it without blocking).
  bool running();
  /// Waits up to `timeout` for the child to exit. Returns its exit code (128 + signal number when killed by
  /// a signal), or nothing if it is still running.
  std::optional<int> wait_for_exit(std::chrono::milliseconds timeout);
  /// Sends `sig` to the child (not to its group). No effect once it has exited.
  void send_signal(int sig);
  /// SIGTERM to the group, waits `grace`, then SIGKILL; returns the exit code. Idempotent.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  /// Current contents of the log file ("" when there is none).
  std::string log() const;
  const std::string& log_file() const { return spec_.log_file; }
  /// Exit code once exited (see wait_for_exit).
  std::optional<int> exit_code() const { return exit_code_; }

 private:
  ProcessSpec spec_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

/// Result of run_command.
struct CommandResult {
  int exit_code = -1;       ///< 128 + signal when killed (e.g. on timeout)
  std::string output;       ///< stdout and stderr, interleaved as written
  bool timed_out = false;
};

/// Runs a command to completion (same start rules as ChildProcess), capturing stdout+stderr in memory;
/// killed (whole group) after `timeout`. Throws std::runtime_error if the program cannot be started.
CommandResult run_command(const std::vector<std::string>& argv, const EnvVars& env = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

/// Finds `program` in $PATH (or returns it unchanged when it contains '/'); "" when not found.
std::string find_program(const std::string& program);

}  // namespace orgproxy::testkit
