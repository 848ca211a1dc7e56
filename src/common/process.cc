#include "common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "common/unique_fd.h"

extern char** environ;

namespace custos {
namespace {

std::vector<char*> ToArgv(const std::vector<std::string>& argv) {
  std::vector<char*> pointers;
  pointers.reserve(argv.size() + 1);
  for (const auto& arg : argv) pointers.push_back(const_cast<char*>(arg.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

Result<pid_t> Spawn(const std::vector<std::string>& argv, int stdout_fd, int stderr_fd,
                    const std::vector<int>& pass_fds = {}) {
  if (argv.empty()) return Error{"empty command line"};
  // Copies above every target number first, so that placing one descriptor
  // at 3 + i cannot overwrite another still to be placed.
  std::vector<UniqueFd> lifted;
  for (int fd : pass_fds) {
    lifted.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 3 + static_cast<int>(pass_fds.size())));
    if (!lifted.back().valid()) return ErrnoError("dup");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
  if (stderr_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  for (std::size_t i = 0; i < lifted.size(); ++i)
    posix_spawn_file_actions_adddup2(&actions, lifted[i].get(), 3 + static_cast<int>(i));
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  // Children start with default signal dispositions and an empty mask, even
  // though the daemon blocks signals to read them from a signalfd.
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  auto args = ToArgv(argv);
  int error = posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) return ErrnoError("cannot start " + argv[0], error);
  return pid;
}

Result<int> WaitForExit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waitpid");
  }
  return ExitCodeFromStatus(status);
}

}  // namespace

int ExitCodeFromStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string JoinArgs(const std::vector<std::string>& argv) {
  std::string joined;
  for (const auto& arg : argv) {
    if (!joined.empty()) joined += ' ';
    joined += arg;
  }
  return joined;
}

Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                 const CommandOptions& options) {
  CommandResult result;
  if (!options.capture) {
    auto pid = Spawn(argv, options.stdout_fd, options.stderr_fd, options.pass_fds);
    if (!pid) return pid.error();
    auto code = WaitForExit(*pid);
    if (!code) return code.error();
    result.exit_code = *code;
    return result;
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoError("pipe");
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  int out = options.stdout_fd >= 0 ? options.stdout_fd : write_end.get();
  int err = options.stderr_fd >= 0 ? options.stderr_fd : write_end.get();
  auto pid = Spawn(argv, out, err, options.pass_fds);
  if (!pid) return pid.error();
  write_end.reset();
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
    if (n > 0) {
      result.output.append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  auto code = WaitForExit(*pid);
  if (!code) return code.error();
  result.exit_code = *code;
  return result;
}

Result<std::string> RunChecked(const std::vector<std::string>& argv) {
  auto result = RunCommand(argv);
  if (!result) return result.error();
  if (result->exit_code != 0) {
    std::string output = result->output;
    while (!output.empty() && output.back() == '\n') output.pop_back();
    // Built piecewise: GCC 12 warns falsely (-Wrestrict) on "'" + string.
    std::string message = "'";
    message += JoinArgs(argv);
    message += "' failed (exit " + std::to_string(result->exit_code) + "): " + output;
    return Error{message};
  }
  return result->output;
}

Result<pid_t> SpawnProcess(const std::vector<std::string>& argv, int stdout_fd, int stderr_fd) {
  return Spawn(argv, stdout_fd, stderr_fd);
}

}  // namespace custos
