#include "orgproxy/testkit/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace orgproxy::testkit {
namespace {

// Everything the child needs, prepared before fork: the child may not allocate.
struct ExecPlan {
  std::string path;
  std::vector<std::string> argv_store;
  std::vector<std::string> env_store;
  std::vector<char*> argv;
  std::vector<char*> envp;

  ExecPlan(const std::vector<std::string>& args, const EnvVars& env) : argv_store(args) {
    if (args.empty()) throw std::runtime_error("ChildProcess: empty argv");
    path = find_program(args[0]);
    if (path.empty()) throw std::runtime_error("ChildProcess: program not found in PATH: " + args[0]);
    for (char** e = environ; e && *e; ++e) {
      std::string_view entry(*e);
      auto name = entry.substr(0, entry.find('='));
      bool overridden = false;
      for (const auto& [k, v] : env) overridden = overridden || k == name;
      if (!overridden) env_store.emplace_back(entry);
    }
    for (const auto& [k, v] : env) env_store.push_back(k + "=" + v);
    for (auto& a : argv_store) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_store) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
};

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Runs in the child between fork and execve: async-signal-safe calls only.
[[noreturn]] void exec_child(const ExecPlan& plan, pid_t parent, int out_fd, const char* log_file,
                             const char* working_dir) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  int in = ::open("/dev/null", O_RDONLY);
  if (in >= 0) ::dup2(in, 0);
  if (out_fd < 0) out_fd = ::open(log_file && *log_file ? log_file : "/dev/null",
                                  O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (out_fd >= 0) {
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
  }
  if (working_dir && *working_dir && ::chdir(working_dir) != 0) ::_exit(126);
  ::execve(plan.path.c_str(), plan.argv.data(), plan.envp.data());
  ::_exit(127);
}

pid_t start(const ExecPlan& plan, int out_fd, const std::string& log_file, const std::string& working_dir) {
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("ChildProcess: fork: ") + std::strerror(errno));
  if (pid == 0) exec_child(plan, parent, out_fd, log_file.c_str(), working_dir.c_str());
  ::setpgid(pid, pid);  // also from the parent, so kill(-pid) works even before the child ran
  return pid;
}

// Once the child has exited: kills what is left of its process group (e.g. nginx workers) while the zombie
// leader still pins the group id (so the signal cannot reach a stranger), then reaps it.
// Returns the exit code, or nothing when the child is still running and `block` is false.
std::optional<int> reap(pid_t pid, bool block) {
  siginfo_t info{};
  for (;;) {
    info.si_pid = 0;
    int r = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT | (block ? 0 : WNOHANG));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;  // not our child any more (already reaped elsewhere)
    if (info.si_pid == 0) return std::nullopt;
    break;
  }
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return decode_status(status);
}

}  // namespace

std::string find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  for (const char* sbin : {"/usr/sbin/", "/sbin/"}) {  // nginx lives in sbin, often not in a test's PATH
    std::string candidate = sbin + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

ChildProcess::ChildProcess(ProcessSpec spec) : spec_(std::move(spec)) {
  ExecPlan plan(spec_.argv, spec_.env);
  pid_ = start(plan, -1, spec_.log_file, spec_.working_dir);
}

ChildProcess::~ChildProcess() { stop(); }

bool ChildProcess::running() {
  if (exit_code_) return false;
  auto code = reap(pid_, false);
  if (code) exit_code_ = code;
  return !code;
}

std::optional<int> ChildProcess::wait_for_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return exit_code_;
}

void ChildProcess::send_signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

int ChildProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ > 0 && running()) {
    ::kill(-pid_, SIGTERM);
    if (!wait_for_exit(grace)) {
      ::kill(-pid_, SIGKILL);
      wait_for_exit(std::chrono::seconds(30));
    }
  }
  return exit_code_.value_or(-1);
}

std::string ChildProcess::log() const {
  if (spec_.log_file.empty()) return "";
  std::ifstream in(spec_.log_file, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

CommandResult run_command(const std::vector<std::string>& argv, const EnvVars& env,
                          std::chrono::milliseconds timeout) {
  ExecPlan plan(argv, env);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) throw std::runtime_error("run_command: pipe2 failed");
  pid_t pid;
  try {
    pid = start(plan, pipefd[1], "", "");
  } catch (...) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    throw;
  }
  ::close(pipefd[1]);
  CommandResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[8192];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    pollfd p{pipefd[0], POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipefd[0]);
  result.exit_code = reap(pid, true).value_or(-1);
  return result;
}

}  // namespace orgproxy::testkit
