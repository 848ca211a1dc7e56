// Parsing and validation of what REST API clients send fleetd: request
// targets (path and query), JSON bodies and event filters. Pure functions
// with no access to the store, so they are fuzzed directly; each refusal is
// a 400 Problem naming the field or parameter at fault. Unknown fields and
// parameters are refused rather than ignored, so a typo never passes as a
// request that silently does something else. Thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fleet/fleet_store.h"
#include "fleet/problem.h"

namespace custos::fleet {

inline constexpr std::size_t kMaxTargetLength = 4096;
inline constexpr std::size_t kMaxConfigBytes = 512 * 1024;
inline constexpr std::chrono::seconds kDefaultTokenTtl{3600};
inline constexpr std::chrono::seconds kMaxTokenTtl{30 * 24 * 3600};

struct RequestTarget {
  std::vector<std::string> path;  // decoded segments: "/v1/sensors/s1" -> {"v1", "sensors", "s1"}
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
};

// Origin-form targets only ("/path?query"); percent-escapes are decoded,
// '+' is a space in the query, and control characters are refused.
ApiResult<RequestTarget> ParseTarget(std::string_view target);

// Sensor ids and tenants: 1-64 of [A-Za-z0-9._-], not starting with '.' or
// '-' (what the CA puts in certificate subjects).
bool IsValidIdentifier(std::string_view text);

struct EnrollRequest {
  std::string token;  // "<secret>.<ca-hash>"
  std::string csr_pem;
  std::string name;  // optional label, "" when absent
};
ApiResult<EnrollRequest> ParseEnrollRequest(std::string_view body);

struct TokenRequest {
  std::string tenant;
  std::chrono::seconds ttl = kDefaultTokenTtl;
};
ApiResult<TokenRequest> ParseTokenRequest(std::string_view body);

struct DesiredStateRequest {
  std::string config;  // YAML: a mapping with only "policy" and "instruments"
};
ApiResult<DesiredStateRequest> ParseDesiredStateRequest(std::string_view body);

// Bodies of requests that take no arguments: empty or "{}".
ApiResult<bool> ParseEmptyRequest(std::string_view body);

// GET /v1/events parameters: since, until (RFC 3339 / EVE timestamps),
// sensor, tenant, type, q (substring), limit (1-1000), after (cursor),
// order (asc|desc). Each may appear once.
ApiResult<EventQuery> ParseEventQuery(
    const std::vector<std::pair<std::string, std::string>>& query);

// GET /v1/sensors parameters: tenant (optional). Yields the tenant or "".
ApiResult<std::string> ParseSensorListQuery(
    const std::vector<std::pair<std::string, std::string>>& query);

// Queries of endpoints that take none.
ApiResult<bool> RequireNoQuery(const std::vector<std::pair<std::string, std::string>>& query);

}  // namespace custos::fleet
