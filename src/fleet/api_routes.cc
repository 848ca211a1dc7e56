#include "fleet/api_routes.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "crypto/token.h"
#include "fleet/api_json.h"
#include "fleet/api_requests.h"
#include "fleet/host_port.h"

namespace custos::fleet {
namespace {

using nlohmann::json;
using Path = std::vector<std::string>;

ApiReply JsonReply(int status, const json& body) {
  ApiReply reply;
  reply.status = status;
  reply.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return reply;
}

ApiReply MethodNotAllowed(const std::string& method, const char* allowed) {
  ApiReply reply = ProblemReply(
      Problem{405, "method-not-allowed",
              "method " + method.substr(0, 16) + " is not allowed here; use " + allowed});
  reply.headers.emplace_back("Allow", allowed);
  return reply;
}

bool IsJsonContentType(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  std::string lower(media);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower == "application/json";
}

// Requests that carry a body must say it is JSON.
std::optional<Problem> CheckJsonBody(const ApiRequest& request) {
  if (request.body.empty() || IsJsonContentType(request.content_type)) return std::nullopt;
  return Problem{415, "unsupported-media-type",
                 "the request body must be sent as Content-Type: application/json"};
}

std::optional<Problem> CheckNoBody(const ApiRequest& request) {
  if (request.body.empty()) return std::nullopt;
  return BadRequest("unexpected-body", request.method + " " + "takes no request body");
}

bool HostCharactersOk(std::string_view host) {
  return !host.empty() && host.size() <= 255 && std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':';
  });
}

}  // namespace

ApiReply ProblemReply(const Problem& problem) {
  ApiReply reply;
  reply.status = problem.status;
  reply.content_type = "application/problem+json";
  if (problem.status >= 500) {
    // The operator reads the cause in the log; clients (some unauthenticated)
    // are not told about the fleet's insides.
    spdlog::error("API request failed: {}", problem.detail);
    reply.body =
        ProblemJson(Problem{problem.status, problem.type, "internal error; see the fleetd log"});
  } else {
    reply.body = ProblemJson(problem);
  }
  if (problem.status == 401) reply.headers.emplace_back("WWW-Authenticate", "Bearer");
  return reply;
}

ApiReply ApiRoutes::Handle(const ApiRequest& request) {
  auto target = ParseTarget(request.target);
  if (!target.ok()) return ProblemReply(target.problem());
  const Path& path = target->path;
  const std::string& method = request.method;
  if (path == Path{"v1", "enroll"}) {
    if (method != "POST") return MethodNotAllowed(method, "POST");
    if (auto none = RequireNoQuery(target->query); !none.ok()) return ProblemReply(none.problem());
    return Enroll(request);
  }
  // Before routing, so an unauthenticated client learns nothing of the routes.
  if (!Authorized(request)) {
    return ProblemReply(Unauthorized(request.authorization.empty()
                                         ? "this request needs Authorization: Bearer <admin token>"
                                         : "the bearer token is not this fleet's admin token"));
  }
  bool has_query = !target->query.empty();
  auto no_query = [&]() -> std::optional<Problem> {
    auto none = RequireNoQuery(target->query);
    if (none.ok()) return std::nullopt;
    return none.problem();
  };
  if (path == Path{"v1", "sensors"}) {
    if (method != "GET") return MethodNotAllowed(method, "GET");
    if (auto problem = CheckNoBody(request)) return ProblemReply(*problem);
    return ListSensors(request, *target);
  }
  if (path.size() >= 3 && path[0] == "v1" && path[1] == "sensors" && path.size() <= 4) {
    const std::string& id = path[2];
    if (!IsValidIdentifier(id)) {
      return ProblemReply(
          BadRequest("invalid-sensor-id", "the sensor id in the path is not valid"));
    }
    if (has_query) {
      if (auto problem = no_query()) return ProblemReply(*problem);
    }
    if (path.size() == 3) {
      if (method != "GET") return MethodNotAllowed(method, "GET");
      if (auto problem = CheckNoBody(request)) return ProblemReply(*problem);
      return GetSensor(id);
    }
    if (path[3] == "desired-state") {
      if (method == "GET") {
        if (auto problem = CheckNoBody(request)) return ProblemReply(*problem);
        return GetDesiredState(id);
      }
      if (method != "PUT") return MethodNotAllowed(method, "GET, PUT");
      return PutDesiredState(id, request);
    }
    if (path[3] == "revoke") {
      if (method != "POST") return MethodNotAllowed(method, "POST");
      return Revoke(id, request);
    }
    if (path[3] == "rekey") {
      if (method != "POST") return MethodNotAllowed(method, "POST");
      return Rekey(id, request);
    }
  }
  if (path == Path{"v1", "events"}) {
    if (method != "GET") return MethodNotAllowed(method, "GET");
    if (auto problem = CheckNoBody(request)) return ProblemReply(*problem);
    return Events(*target);
  }
  if (path == Path{"v1", "tokens"}) {
    if (has_query) {
      if (auto problem = no_query()) return ProblemReply(*problem);
    }
    if (method == "GET") {
      if (auto problem = CheckNoBody(request)) return ProblemReply(*problem);
      return ListTokens();
    }
    if (method != "POST") return MethodNotAllowed(method, "GET, POST");
    return CreateToken(request);
  }
  return ProblemReply(NotFound("no such resource: " + request.target.substr(0, 128)));
}

bool ApiRoutes::Authorized(const ApiRequest& request) const {
  std::string_view header = request.authorization;
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size()) return false;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return false;
  }
  std::string_view token = header.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return false;
  return crypto::ConstantTimeEquals(Sha256Hex(token), core_.admin_token_hash);
}

std::string ApiRoutes::ChannelAddressFor(const ApiRequest& request) const {
  if (!core_.channel_advertise.empty()) return core_.channel_advertise;
  // The sensor reached the API under this name, so it can reach the channel
  // under it too; the server certificate names it (TLS checked that).
  std::string host;
  if (auto parsed = ParseHostPort(request.host); parsed.ok()) {
    host = parsed->host;
  } else if (request.host.find(':') == std::string::npos) {
    host = request.host;
  }
  if (!HostCharactersOk(host)) host = request.local_address;
  return FormatHostPort(host, core_.channel_port);
}

ApiReply ApiRoutes::Enroll(const ApiRequest& request) {
  if (auto problem = CheckJsonBody(request)) return ProblemReply(*problem);
  auto parsed = ParseEnrollRequest(request.body);
  if (!parsed.ok()) return ProblemReply(parsed.problem());
  auto enrolled = core_.enroller->Enroll(*parsed);
  if (!enrolled.ok()) return ProblemReply(enrolled.problem());
  return JsonReply(200, {{"sensor_id", enrolled->sensor_id},
                         {"tenant", enrolled->tenant},
                         {"certificate", enrolled->certificate_pem},
                         {"chain", enrolled->chain_pem},
                         {"root", enrolled->root_pem},
                         {"channel", ChannelAddressFor(request)}});
}

ApiReply ApiRoutes::ListSensors(const ApiRequest&, const RequestTarget& target) {
  auto tenant = ParseSensorListQuery(target.query);
  if (!tenant.ok()) return ProblemReply(tenant.problem());
  auto sensors = core_.store->ListSensors(*tenant);
  if (!sensors.ok()) return ProblemReply(Internal(sensors.error().message));
  json list = json::array();
  for (const SensorRecord& sensor : *sensors) {
    list.push_back(SensorJson(sensor, core_.registry->Live(sensor.id), nullptr, false));
  }
  return JsonReply(200, {{"sensors", std::move(list)}});
}

ApiReply ApiRoutes::GetSensor(const std::string& id) {
  auto sensor = core_.store->GetSensor(id);
  if (!sensor.ok()) return ProblemReply(Internal(sensor.error().message));
  if (!sensor->has_value()) return ProblemReply(NotFound("no sensor " + id));
  auto desired = core_.store->GetDesiredState(id);
  if (!desired.ok()) return ProblemReply(Internal(desired.error().message));
  return JsonReply(200, SensorJson(**sensor, core_.registry->Live(id), &*desired, true));
}

ApiReply ApiRoutes::GetDesiredState(const std::string& id) {
  auto sensor = core_.store->GetSensor(id);
  if (!sensor.ok()) return ProblemReply(Internal(sensor.error().message));
  if (!sensor->has_value()) return ProblemReply(NotFound("no sensor " + id));
  auto desired = core_.store->GetDesiredState(id);
  if (!desired.ok()) return ProblemReply(Internal(desired.error().message));
  json body = SensorJson(**sensor, std::nullopt, &*desired, false)["desired_state"];
  body["config"] = desired->version > 0 ? json(DesiredConfigOf(*desired)) : json(nullptr);
  return JsonReply(200, body);
}

ApiReply ApiRoutes::PutDesiredState(const std::string& id, const ApiRequest& request) {
  if (auto problem = CheckJsonBody(request)) return ProblemReply(*problem);
  auto parsed = ParseDesiredStateRequest(request.body);
  if (!parsed.ok()) return ProblemReply(parsed.problem());
  auto changed = SetDesiredState(core_, id, parsed->config);
  if (!changed.ok()) return ProblemReply(Internal(changed.error().message));
  if (changed->outcome == DesiredStateOutcome::kUnknownSensor) {
    return ProblemReply(NotFound("no sensor " + id));
  }
  if (changed->outcome == DesiredStateOutcome::kRevokedSensor) {
    return ProblemReply(Problem{409, "sensor-revoked", "sensor " + id + " is revoked"});
  }
  return JsonReply(200,
                   {{"sensor_id", id}, {"version", changed->version}, {"pushed", changed->pushed}});
}

ApiReply ApiRoutes::Rekey(const std::string& id, const ApiRequest& request) {
  if (auto problem = CheckJsonBody(request)) return ProblemReply(*problem);
  auto empty = ParseEmptyRequest(request.body);
  if (!empty.ok()) return ProblemReply(empty.problem());
  if (core_.keys == nullptr) return ProblemReply(Internal("this fleet hands out no data keys"));
  auto sensor = core_.store->GetSensor(id);
  if (!sensor.ok()) return ProblemReply(Internal(sensor.error().message));
  if (!sensor->has_value()) return ProblemReply(NotFound("no sensor " + id));
  if ((*sensor)->revoked_at) {
    return ProblemReply(Problem{409, "sensor-revoked", "sensor " + id + " is revoked"});
  }
  auto version = core_.keys->OrderRekey(id);
  if (!version.ok()) return ProblemReply(Internal(version.error().message));
  // A connected sensor re-keys now; one that is away, when it next connects.
  auto link = core_.registry->Find(id);
  if (link) link->SendCommand("rekey");
  return JsonReply(200,
                   {{"sensor_id", id}, {"pending_version", *version}, {"sent", link != nullptr}});
}

ApiReply ApiRoutes::Revoke(const std::string& id, const ApiRequest& request) {
  if (auto problem = CheckJsonBody(request)) return ProblemReply(*problem);
  auto empty = ParseEmptyRequest(request.body);
  if (!empty.ok()) return ProblemReply(empty.problem());
  auto revoked = RevokeSensor(core_, id);
  if (!revoked.ok()) return ProblemReply(Internal(revoked.error().message));
  if (*revoked == RevokeOutcome::kUnknownSensor) return ProblemReply(NotFound("no sensor " + id));
  return JsonReply(200, {{"sensor_id", id},
                         {"revoked", true},
                         {"already_revoked", *revoked == RevokeOutcome::kAlreadyRevoked}});
}

ApiReply ApiRoutes::Events(const RequestTarget& target) {
  auto query = ParseEventQuery(target.query);
  if (!query.ok()) return ProblemReply(query.problem());
  auto page = core_.store->QueryEvents(*query);
  if (!page.ok()) return ProblemReply(Internal(page.error().message));
  json events = json::array();
  for (const StoredEvent& event : page->events) events.push_back(EventJson(event));
  return JsonReply(
      200, {{"events", std::move(events)},
            {"next_after", page->next_after_id > 0 ? json(page->next_after_id) : json(nullptr)}});
}

ApiReply ApiRoutes::CreateToken(const ApiRequest& request) {
  if (auto problem = CheckJsonBody(request)) return ProblemReply(*problem);
  auto parsed = ParseTokenRequest(request.body);
  if (!parsed.ok()) return ProblemReply(parsed.problem());
  auto secret = crypto::GenerateEnrollmentToken();
  if (!secret.ok()) return ProblemReply(Internal(secret.error().message));
  auto expires_at = std::chrono::system_clock::now() + parsed->ttl;
  if (auto added = core_.store->AddEnrollmentToken(*secret, parsed->tenant, expires_at);
      !added.ok()) {
    return ProblemReply(Internal(added.error().message));
  }
  spdlog::info("enrollment token {} created for tenant {}", Sha256Hex(*secret).substr(0, 16),
               parsed->tenant);
  return JsonReply(201, {{"token", *secret + "." + core_.enroller->root_hash()},
                         {"id", Sha256Hex(*secret).substr(0, 16)},
                         {"tenant", parsed->tenant},
                         {"expires_at", FormatApiTime(expires_at)}});
}

ApiReply ApiRoutes::ListTokens() {
  auto tokens = core_.store->ListEnrollmentTokens();
  if (!tokens.ok()) return ProblemReply(Internal(tokens.error().message));
  auto now = std::chrono::system_clock::now();
  json list = json::array();
  for (const EnrollmentTokenInfo& token : *tokens) list.push_back(TokenJson(token, now));
  return JsonReply(200, {{"tokens", std::move(list)}});
}

}  // namespace custos::fleet
