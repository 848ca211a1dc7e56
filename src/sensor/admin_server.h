// The sensor's local admin socket: a unix stream socket, mode 0600, where
// each connection sends one JSON request line and gets one JSON reply line.
// Requests: {"command":"status"}, {"command":"reload"},
// {"command":"start"|"stop"|"restart","instrument":NAME}, {"command":"sweep"}. The protocol is in
// docs/configuration.md; `custos sensor ...` is its client.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "sensor/event_loop.h"

namespace custos {

class AdminServer {
 public:
  using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;

  AdminServer(EventLoop& loop, std::string path, Handler handler);
  ~AdminServer();
  Status Listen();

 private:
  void Accept();

  EventLoop& loop_;
  std::string path_;
  Handler handler_;
  UniqueFd listener_;
};

// Client side: sends one request to the socket and returns the reply.
Result<nlohmann::json> AdminRequest(const std::string& path, const nlohmann::json& request);

}  // namespace custos
