#include "sandbox/oci_runtime.h"

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/process.h"

namespace custos {

OciRuntime::OciRuntime(std::string binary, std::string state_root)
    : binary_(std::move(binary)), state_root_(std::move(state_root)) {}

std::vector<std::string> OciRuntime::Command(std::initializer_list<std::string> args) const {
  std::vector<std::string> argv{binary_, "--root", state_root_};
  argv.insert(argv.end(), args);
  return argv;
}

Result<pid_t> OciRuntime::Launch(const std::string& verb, const std::string& id,
                                 const std::string& bundle, int output_fd,
                                 const std::vector<int>& pass_fds) {
  // The container inherits the runtime's stdout/stderr, so they cannot be a
  // pipe we wait on; the runtime's own errors go to a log file instead.
  std::string pid_file = bundle + "/init.pid";
  std::string log_file = bundle + "/runtime.log";
  std::vector<std::string> argv{binary_,  "--root",       state_root_, "--log",
                                log_file, "--log-format", "json",      verb};
  if (verb == "run") argv.push_back("--detach");
  if (!pass_fds.empty())
    argv.insert(argv.end(), {"--preserve-fds", std::to_string(pass_fds.size())});
  argv.insert(argv.end(), {"--bundle", bundle, "--pid-file", pid_file, id});
  CommandOptions options;
  options.capture = false;
  options.stdout_fd = output_fd;
  options.stderr_fd = output_fd;
  options.pass_fds = pass_fds;
  auto result = RunCommand(argv, options);
  if (!result) return result.error();
  if (result->exit_code != 0) {
    std::string detail;
    if (auto log = ReadFile(log_file)) {
      // runc logs JSON lines; the last error line says what went wrong.
      std::string line;
      for (size_t start = 0; start < log->size();) {
        size_t end = log->find('\n', start);
        if (end == std::string::npos) end = log->size();
        auto entry = nlohmann::json::parse(log->substr(start, end - start), nullptr, false);
        if (!entry.is_discarded() && entry.value("level", "") == "error") {
          detail = entry.value("msg", "");
        }
        start = end + 1;
      }
    }
    return Error{binary_ + " " + verb + " " + id + " failed (exit " +
                 std::to_string(result->exit_code) + ")" + (detail.empty() ? "" : ": " + detail)};
  }
  auto pid_text = ReadFile(pid_file);
  if (!pid_text) return pid_text.error();
  try {
    return static_cast<pid_t>(std::stol(*pid_text));
  } catch (const std::exception&) {
    return Error{"unreadable pid file " + pid_file};
  }
}

Result<pid_t> OciRuntime::Create(const std::string& id, const std::string& bundle, int output_fd,
                                 const std::vector<int>& pass_fds) {
  return Launch("create", id, bundle, output_fd, pass_fds);
}

Result<pid_t> OciRuntime::Run(const std::string& id, const std::string& bundle, int output_fd,
                              const std::vector<int>& pass_fds) {
  return Launch("run", id, bundle, output_fd, pass_fds);
}

Status OciRuntime::Start(const std::string& id) {
  auto result = RunChecked(Command({"start", id}));
  if (!result) return result.error();
  return {};
}

Status OciRuntime::Kill(const std::string& id, int signal) {
  auto result = RunChecked(Command({"kill", id, std::to_string(signal)}));
  if (!result) return result.error();
  return {};
}

Status OciRuntime::Delete(const std::string& id, bool force) {
  auto result =
      force ? RunChecked(Command({"delete", "--force", id})) : RunChecked(Command({"delete", id}));
  if (!result) return result.error();
  return {};
}

Result<std::vector<std::string>> OciRuntime::List() {
  auto output = RunChecked(Command({"list", "--format", "json"}));
  if (!output) return output.error();
  std::vector<std::string> ids;
  auto list = nlohmann::json::parse(*output, nullptr, false);
  if (list.is_array()) {
    for (const auto& entry : list) ids.push_back(entry.value("id", ""));
  }
  return ids;
}

}  // namespace custos
