// The REST API's routes (docs/api.md): one request in, one reply out,
// independent of the HTTP transport. Every route but POST /v1/enroll needs
// the admin bearer token; every refusal is an application/problem+json reply
// that names the input at fault, and is decided before anything is written,
// so a refused request changes nothing. Handle blocks on the store: call it
// off the network threads. Thread-safe.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "fleet/fleet_core.h"
#include "fleet/problem.h"

namespace custos::fleet {

struct ApiRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // "/v1/events?type=dns"
  std::string authorization;
  std::string content_type;
  std::string host;           // the Host header, to tell an enrolling sensor where the channel is
  std::string local_address;  // the address the client reached, when Host is unusable
  std::string body;
};

struct ApiReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones
};

ApiReply ProblemReply(const Problem& problem);

class ApiRoutes {
 public:
  explicit ApiRoutes(FleetCore& core) : core_(core) {}
  ApiReply Handle(const ApiRequest& request);

 private:
  ApiReply Enroll(const ApiRequest& request);
  ApiReply ListSensors(const ApiRequest& request, const RequestTarget& target);
  ApiReply GetSensor(const std::string& id);
  ApiReply PutDesiredState(const std::string& id, const ApiRequest& request);
  ApiReply GetDesiredState(const std::string& id);
  ApiReply Revoke(const std::string& id, const ApiRequest& request);
  ApiReply Rekey(const std::string& id, const ApiRequest& request);
  ApiReply Events(const RequestTarget& target);
  ApiReply CreateToken(const ApiRequest& request);
  ApiReply ListTokens();
  bool Authorized(const ApiRequest& request) const;
  std::string ChannelAddressFor(const ApiRequest& request) const;

  FleetCore& core_;
};

}  // namespace custos::fleet
