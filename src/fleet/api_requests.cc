#include "fleet/api_requests.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace custos::fleet {
namespace {

using nlohmann::json;
using Query = std::vector<std::pair<std::string, std::string>>;

constexpr std::size_t kMaxTokenLength = 256;
constexpr std::size_t kMaxCsrBytes = 16 * 1024;
constexpr std::size_t kMaxNameLength = 64;
constexpr std::size_t kMaxTextFilter = 256;

// Hostile input is quoted in details, but never at length.
std::string Quote(std::string_view text) {
  std::string quoted = "\"";
  quoted += text.substr(0, 64);
  if (text.size() > 64) quoted += "...";
  quoted += '"';
  return quoted;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

ApiResult<std::string> Decode(std::string_view text, bool plus_is_space) {
  std::string decoded;
  decoded.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      int high = i + 2 < text.size() ? HexValue(text[i + 1]) : -1;
      int low = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
      if (high < 0 || low < 0) {
        return BadRequest("invalid-target", "bad percent-escape in the request target");
      }
      c = static_cast<char>(high * 16 + low);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return BadRequest("invalid-target", "control character in the request target");
    }
    decoded += c;
  }
  return decoded;
}

// The body as a JSON object whose keys are all in `fields`.
ApiResult<json> ParseObject(std::string_view body, std::initializer_list<std::string_view> fields) {
  if (body.empty())
    return BadRequest("invalid-json", "the request body is empty; send a JSON object");
  if (!IsBoundedJson(body)) {
    return BadRequest("invalid-json",
                      "the request body is not valid JSON (at most 64 levels deep)");
  }
  json object = json::parse(body, nullptr, false);
  if (object.is_discarded() || !object.is_object()) {
    return BadRequest("invalid-json", "the request body must be a JSON object");
  }
  for (auto item = object.begin(); item != object.end(); ++item) {
    bool known = false;
    for (std::string_view field : fields) known = known || item.key() == field;
    if (!known) return BadRequest("unknown-field", "unknown field " + Quote(item.key()));
  }
  return object;
}

// A required (or, with `required` false, optional) string field of
// 1..max_bytes bytes. Absent optional fields yield "".
ApiResult<std::string> StringField(const json& object, const char* name, std::size_t max_bytes,
                                   bool required) {
  auto found = object.find(name);
  if (found == object.end()) {
    if (!required) return std::string();
    return BadRequest("missing-field", std::string("field \"") + name + "\" is required");
  }
  if (!found->is_string()) {
    return BadRequest("invalid-field", std::string("field \"") + name + "\" must be a string");
  }
  const auto& text = found->get_ref<const std::string&>();
  if (text.empty() || text.size() > max_bytes) {
    return BadRequest("invalid-field", std::string("field \"") + name + "\" must be 1 to " +
                                           std::to_string(max_bytes) + " bytes");
  }
  return text;
}

bool HasControlCharacters(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

template <typename Integer>
bool ParseDecimal(std::string_view text, Integer& value) {
  if (text.empty() || text.size() > 20) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

// Each parameter once, and only those in `allowed`.
ApiResult<bool> CheckParameters(const Query& query,
                                std::initializer_list<std::string_view> allowed) {
  std::set<std::string> seen;
  for (const auto& parameter : query) {
    bool known = false;
    for (std::string_view name : allowed) known = known || parameter.first == name;
    if (!known)
      return BadRequest("unknown-parameter", "unknown parameter " + Quote(parameter.first));
    if (!seen.insert(parameter.first).second) {
      return BadRequest("invalid-parameter",
                        "parameter " + Quote(parameter.first) + " given twice");
    }
  }
  return true;
}

ApiResult<bool> CheckConfigYaml(const std::string& config) {
  YAML::Node root;
  try {
    root = YAML::Load(config);
  } catch (const std::exception& error) {
    return BadRequest("invalid-config",
                      std::string("\"config\" is not valid YAML: ") + error.what());
  }
  if (!root.IsMap()) {
    return BadRequest("invalid-config",
                      "\"config\" must be a YAML mapping with policy: and instruments:");
  }
  for (const auto& entry : root) {
    std::string key = entry.first.IsScalar() ? entry.first.Scalar() : std::string("?");
    if (key != "policy" && key != "instruments") {
      return BadRequest("invalid-config",
                        "\"config\" may hold only policy: and instruments:, not " + Quote(key));
    }
  }
  return true;
}

}  // namespace

ApiResult<RequestTarget> ParseTarget(std::string_view target) {
  if (target.empty() || target.front() != '/') {
    return BadRequest("invalid-target", "the request target must start with '/'");
  }
  if (target.size() > kMaxTargetLength) {
    return BadRequest("invalid-target", "the request target is longer than 4096 bytes");
  }
  RequestTarget parsed;
  std::string_view path = target.substr(0, target.find('?'));
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    auto segment = Decode(path.substr(start, end - start), false);
    if (!segment.ok()) return segment.problem();
    // A trailing slash is the same resource; empty segments elsewhere are not.
    if (segment->empty() && end != path.size()) {
      return BadRequest("invalid-target", "empty segment in the request path");
    }
    if (!segment->empty()) parsed.path.push_back(std::move(*segment));
    start = end + 1;
  }
  if (target.size() == path.size()) return parsed;
  std::string_view query = target.substr(path.size() + 1);
  while (!query.empty()) {
    std::string_view pair = query.substr(0, query.find('&'));
    query.remove_prefix(std::min(query.size(), pair.size() + 1));
    if (pair.empty()) continue;
    std::size_t equals = pair.find('=');
    auto name = Decode(pair.substr(0, equals), true);
    if (!name.ok()) return name.problem();
    auto value = Decode(equals == std::string_view::npos ? "" : pair.substr(equals + 1), true);
    if (!value.ok()) return value.problem();
    parsed.query.emplace_back(std::move(*name), std::move(*value));
  }
  return parsed;
}

bool IsValidIdentifier(std::string_view text) {
  if (text.empty() || text.size() > 64 || text.front() == '.' || text.front() == '-') return false;
  for (char c : text) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '-';
    if (!allowed) return false;
  }
  return true;
}

ApiResult<EnrollRequest> ParseEnrollRequest(std::string_view body) {
  auto object = ParseObject(body, {"token", "csr", "name"});
  if (!object.ok()) return object.problem();
  EnrollRequest request;
  auto token = StringField(*object, "token", kMaxTokenLength, true);
  if (!token.ok()) return token.problem();
  auto csr = StringField(*object, "csr", kMaxCsrBytes, true);
  if (!csr.ok()) return csr.problem();
  auto name = StringField(*object, "name", kMaxNameLength, false);
  if (!name.ok()) return name.problem();
  if (HasControlCharacters(*name)) {
    return BadRequest("invalid-field", "field \"name\" must not hold control characters");
  }
  request.token = std::move(*token);
  request.csr_pem = std::move(*csr);
  request.name = std::move(*name);
  return request;
}

ApiResult<TokenRequest> ParseTokenRequest(std::string_view body) {
  auto object = ParseObject(body, {"tenant", "ttl_seconds"});
  if (!object.ok()) return object.problem();
  TokenRequest request;
  auto tenant = StringField(*object, "tenant", 64, true);
  if (!tenant.ok()) return tenant.problem();
  if (!IsValidIdentifier(*tenant)) {
    return BadRequest(
        "invalid-field",
        "field \"tenant\" must be 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'");
  }
  request.tenant = std::move(*tenant);
  auto ttl = object->find("ttl_seconds");
  if (ttl != object->end()) {
    constexpr auto kMax = kMaxTokenTtl.count();
    if (!ttl->is_number_integer() || ttl->get<std::int64_t>() < 60 ||
        ttl->get<std::int64_t>() > kMax) {
      return BadRequest("invalid-field", "field \"ttl_seconds\" must be an integer from 60 to " +
                                             std::to_string(kMax));
    }
    request.ttl = std::chrono::seconds(ttl->get<std::int64_t>());
  }
  return request;
}

ApiResult<DesiredStateRequest> ParseDesiredStateRequest(std::string_view body) {
  auto object = ParseObject(body, {"config"});
  if (!object.ok()) return object.problem();
  auto config = StringField(*object, "config", kMaxConfigBytes, true);
  if (!config.ok()) return config.problem();
  auto yaml = CheckConfigYaml(*config);
  if (!yaml.ok()) return yaml.problem();
  return DesiredStateRequest{std::move(*config)};
}

ApiResult<bool> ParseEmptyRequest(std::string_view body) {
  if (body.empty()) return true;
  auto object = ParseObject(body, {});
  if (!object.ok()) return object.problem();
  return true;
}

ApiResult<EventQuery> ParseEventQuery(const Query& query) {
  auto checked = CheckParameters(
      query, {"since", "until", "sensor", "tenant", "type", "q", "limit", "after", "order"});
  if (!checked.ok()) return checked.problem();
  EventQuery parsed;
  for (const auto& parameter : query) {
    const std::string& name = parameter.first;
    const std::string& value = parameter.second;
    auto invalid = [&name](const std::string& why) {
      return BadRequest("invalid-parameter", "parameter \"" + name + "\" " + why);
    };
    if (name == "since" || name == "until") {
      auto time = ParseEveTimestamp(value);
      if (!time) return invalid("must be a timestamp like 2026-11-23T15:04:05Z");
      (name == "since" ? parsed.from : parsed.until) = *time;
    } else if (name == "sensor" || name == "tenant") {
      if (!IsValidIdentifier(value)) return invalid("is not a valid identifier");
      (name == "sensor" ? parsed.sensor_id : parsed.tenant) = value;
    } else if (name == "type") {
      if (value.empty() || value.size() > 64 || HasControlCharacters(value)) {
        return invalid("must be 1 to 64 printable characters");
      }
      parsed.event_type = value;
    } else if (name == "q") {
      if (value.empty() || value.size() > kMaxTextFilter) {
        return invalid("must be 1 to 256 bytes");
      }
      parsed.text = value;
    } else if (name == "limit") {
      std::size_t limit = 0;
      if (!ParseDecimal(value, limit) || limit < 1 || limit > kMaxQueryLimit) {
        return invalid("must be an integer from 1 to " + std::to_string(kMaxQueryLimit));
      }
      parsed.limit = limit;
    } else if (name == "after") {
      std::int64_t after = 0;
      if (!ParseDecimal(value, after) || after < 1) return invalid("must be a positive integer");
      parsed.after_id = after;
    } else if (name == "order") {
      if (value != "asc" && value != "desc") return invalid("must be asc or desc");
      parsed.newest_first = value == "desc";
    }
  }
  if (parsed.from && parsed.until && *parsed.until <= *parsed.from) {
    return BadRequest("invalid-parameter", "parameter \"until\" must be after \"since\"");
  }
  return parsed;
}

ApiResult<std::string> ParseSensorListQuery(const Query& query) {
  auto checked = CheckParameters(query, {"tenant"});
  if (!checked.ok()) return checked.problem();
  if (query.empty()) return std::string();
  if (!IsValidIdentifier(query.front().second)) {
    return BadRequest("invalid-parameter", "parameter \"tenant\" is not a valid identifier");
  }
  return query.front().second;
}

ApiResult<bool> RequireNoQuery(const Query& query) { return CheckParameters(query, {}); }

}  // namespace custos::fleet
