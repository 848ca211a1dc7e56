// Makes the fleet folder, starts custos-fleetd and stops it again; the
// folder is removed when the Fleet goes away.
#include "bench/fleet/fleet_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <thread>
#include <utility>

#include "common/files.h"
#include "common/log.h"
#include "common/process.h"
#include "common/unique_fd.h"

namespace custos::fleetbench {

Result<std::unique_ptr<Fleet>> Fleet::Start(const Tools& tools) {
  char scratch[] = "/tmp/custos-fleet-bench.XXXXXX";
  if (!::mkdtemp(scratch)) return ErrnoError("mkdtemp");
  std::unique_ptr<Fleet> fleet(new Fleet(scratch));
  CUSTOS_TRY(fleet->Init(tools));
  CUSTOS_TRY(fleet->Spawn(tools));
  return fleet;
}

Fleet::~Fleet() {
  if (auto stopped = Stop(); !stopped.ok()) spdlog::warn("{}", stopped.error().message);
  std::error_code ignored;
  fs::remove_all(scratch_, ignored);
}

Status Fleet::Stop() {
  if (pid_ <= 0) return {};
  pid_t pid = std::exchange(pid_, -1);
  ::kill(pid, SIGTERM);
  UniqueFd process(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  bool exited = false;
  if (process.valid()) {
    pollfd ready{process.get(), POLLIN, 0};
    exited = ::poll(&ready, 1, 10000) == 1;
  }
  if (!exited) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!exited) return Error{"custos-fleetd did not stop within 10 s of SIGTERM; killed"};
  if (int code = ExitCodeFromStatus(status); code != 0) {
    return Error{"custos-fleetd exited with " + std::to_string(code) + " after SIGTERM"};
  }
  return {};
}

std::string Fleet::LogTail(std::size_t lines) const {
  auto text = ReadFile(log_);
  if (!text.ok()) return "";
  std::size_t start = text->size();
  for (std::size_t found = 0; start > 0 && found <= lines;) {
    if ((*text)[--start] == '\n') ++found;
  }
  return text->substr(start);
}

Status Fleet::Init(const Tools& tools) {
  auto init = RunCommand(
      {tools.cli, "fleet", "init", "--dir", dir_.string(), "--address", kHost, "--save-token"});
  if (!init.ok()) return Context("custos fleet init", init.error());
  if (init->exit_code != 0) {
    return Error{"custos fleet init failed (" + std::to_string(init->exit_code) +
                 "): " + init->output};
  }
  auto token = ReadFile(dir_ / "admin.token");
  if (!token.ok()) return token.error();
  admin_token_ = *token;
  while (!admin_token_.empty() && std::isspace(static_cast<unsigned char>(admin_token_.back()))) {
    admin_token_.pop_back();
  }
  auto root = ReadFile(dir_ / "root" / "root.crt");
  if (!root.ok()) return root.error();
  root_pem_ = std::move(*root);
  return {};
}

Status Fleet::Spawn(const Tools& tools) {
  auto api = FreeLoopbackPort();
  if (!api.ok()) return api.error();
  auto channel = FreeLoopbackPort();
  if (!channel.ok()) return channel.error();
  api_port_ = *api;
  UniqueFd log(::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!log.valid()) return ErrnoError("cannot create " + log_.string());
  std::string host = kHost;
  auto pid = SpawnProcess(
      {tools.fleetd, "--dir", dir_.string(), "--api", host + ":" + std::to_string(*api),
       "--channel", host + ":" + std::to_string(*channel)},
      log.get(), log.get());
  if (!pid.ok()) return Context("custos-fleetd", pid.error());
  pid_ = *pid;
  return WaitForApi();
}

Status Fleet::WaitForApi() {
  auto deadline = Clock::now() + kStepTimeout;
  asio::io_context io;
  while (Clock::now() < deadline && !interrupted) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Error{"custos-fleetd exited with " + std::to_string(ExitCodeFromStatus(status)) +
                   " at start:\n" + LogTail()};
    }
    tcp::socket socket(io);
    boost::system::error_code error;
    socket.connect(api(), error);
    if (!error) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Error{"custos-fleetd's API port did not open within 15 s:\n" + LogTail()};
}

}  // namespace custos::fleetbench
