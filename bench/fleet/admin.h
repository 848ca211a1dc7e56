// Admin: the bench's calls to fleetd's API with the admin token.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "bench/fleet/engine.h"
#include "bench/fleet/fleet_process.h"
#include "bench/fleet/https_exchange.h"
#include "common/result.h"

namespace custos::fleetbench {

// The operator's side: tokens, the event listing.
class Admin {
 public:
  Admin(Engine& engine, const Fleet& fleet, ssl::context& tls)
      : engine_(engine), fleet_(fleet), tls_(tls) {}

  void Call(std::size_t thread, http::verb method, const std::string& target,
            const std::string& body, HttpsExchange::Done done);

  Result<HttpReply> CallAndWait(http::verb method, const std::string& target);

  // POST /v1/tokens, then `done` with the token.
  void CreateToken(std::size_t thread, std::function<void(Result<std::string>)> done);

 private:
  Engine& engine_;
  const Fleet& fleet_;
  ssl::context& tls_;
};

}  // namespace custos::fleetbench
