// Starting other programs (runc, ip, nft, ...) and waiting for them.
// RunCommand is synchronous and reaps only its own child, so it is safe to
// call from a subreaper that reaps other children elsewhere.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace custos {

struct CommandOptions {
  int stdout_fd = -1;         // -1: captured into CommandResult::output
  int stderr_fd = -1;         // -1: captured together with stdout
  bool capture = true;        // false: inherit the caller's stdout/stderr
  std::vector<int> pass_fds;  // become descriptors 3, 4, ... of the child
};

struct CommandResult {
  int exit_code = 0;   // 128+N when killed by signal N
  std::string output;  // stdout and stderr, when captured
};

// Runs argv[0] (looked up in PATH) and waits for it.
Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                 const CommandOptions& options = {});

// Like RunCommand, but a non-zero exit is an Error carrying the output.
Result<std::string> RunChecked(const std::vector<std::string>& argv);

// Spawns argv and returns its pid without waiting. stdout/stderr go to the
// given descriptors (or are inherited when -1).
Result<pid_t> SpawnProcess(const std::vector<std::string>& argv, int stdout_fd = -1,
                           int stderr_fd = -1);

// Decodes a waitpid status into an exit code (128+N for signal N).
int ExitCodeFromStatus(int status);

std::string JoinArgs(const std::vector<std::string>& argv);

}  // namespace custos
