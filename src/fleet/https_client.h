// A small HTTPS client for fleetd's API port (Boost.Beast): one request per
// call over a fresh TLS 1.3 connection that trusts only the fleet root and
// checks the server's name. Used by the `custos fleet` commands and tests.
// Each call has its own io_context, so calls may run on several threads.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/result.h"
#include "fleet/host_port.h"

namespace custos::fleet {

struct HttpsClientOptions {
  HostPort server;
  std::string root_pem;              // the fleet root certificate
  std::string bearer_token;          // sent as "Authorization: Bearer ..." unless empty
  std::chrono::seconds timeout{30};  // for the whole exchange
};

struct HttpsReply {
  int status = 0;
  std::string content_type;
  std::string body;
};

// A transport or TLS failure is an Error; any HTTP status is a reply.
Result<HttpsReply> HttpsCall(const HttpsClientOptions& options, std::string_view method,
                             std::string_view target, std::string_view body = {},
                             std::string_view content_type = "application/json");

}  // namespace custos::fleet
