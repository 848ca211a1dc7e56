// The fleet under test: a folder made by `custos fleet init` and the
// custos-fleetd process serving it on free loopback ports.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "bench/fleet/net.h"
#include "bench/fleet/support.h"
#include "common/result.h"

namespace custos::fleetbench {

struct Tools {
  std::string cli = CUSTOS_CLI;
  std::string fleetd = CUSTOS_FLEETD;
};

class Fleet {
 public:
  static Result<std::unique_ptr<Fleet>> Start(const Tools& tools);

  ~Fleet();

  // SIGTERM, then SIGKILL if fleetd is not gone within 10 s.
  Status Stop();

  // The end of fleetd's log, for error reports.
  std::string LogTail(std::size_t lines = 15) const;

  pid_t pid() const { return pid_; }
  const fs::path& dir() const { return dir_; }
  const std::string& admin_token() const { return admin_token_; }
  const std::string& root_pem() const { return root_pem_; }
  tcp::endpoint api() const { return {asio::ip::make_address(kHost), api_port_}; }
  std::string api_host() const { return std::string(kHost) + ":" + std::to_string(api_port_); }

 private:
  explicit Fleet(fs::path scratch)
      : scratch_(std::move(scratch)), dir_(scratch_ / "fleet"), log_(scratch_ / "fleetd.log") {}

  Status Init(const Tools& tools);
  Status Spawn(const Tools& tools);
  // Until the API port accepts a connection, fleetd exits, or 15 s pass.
  Status WaitForApi();

  fs::path scratch_, dir_, log_;
  pid_t pid_ = -1;
  std::string admin_token_, root_pem_;
  std::uint16_t api_port_ = 0;
};

}  // namespace custos::fleetbench
