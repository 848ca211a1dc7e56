#include "fleet/problem.h"

#include <nlohmann/json.hpp>

namespace custos::fleet {

Problem BadRequest(std::string type, std::string detail) {
  return Problem{400, std::move(type), std::move(detail)};
}

Problem Unauthorized(std::string detail) { return Problem{401, "unauthorized", std::move(detail)}; }

Problem NotFound(std::string detail) { return Problem{404, "not-found", std::move(detail)}; }

Problem Internal(std::string detail) { return Problem{500, "internal", std::move(detail)}; }

std::string ProblemTypeUri(const Problem& problem) {
  std::string uri = "urn:custos:problem:";
  uri += problem.type.empty() ? "about-blank" : problem.type;
  return uri;
}

std::string ProblemTitle(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

std::string ProblemJson(const Problem& problem) {
  nlohmann::json body = {{"type", ProblemTypeUri(problem)},
                         {"title", ProblemTitle(problem.status)},
                         {"status", problem.status},
                         {"detail", problem.detail}};
  // Replacement keeps a detail quoting hostile input from breaking the reply.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace custos::fleet
