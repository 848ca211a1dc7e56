// API errors as RFC 9457 problem details. Everything fleetd refuses over
// HTTP becomes one Problem naming the input at fault; ApiResult carries a
// value or a Problem between the parsers, enrollment and the routes.
// Plain values: thread-safe as any value type.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace custos::fleet {

struct Problem {
  int status = 400;
  std::string type;    // short slug, e.g. "invalid-field"; the URI is derived from it
  std::string detail;  // names the field, parameter or header at fault
};

Problem BadRequest(std::string type, std::string detail);
Problem Unauthorized(std::string detail);
Problem NotFound(std::string detail);
Problem Internal(std::string detail);

// "urn:custos:problem:<type>".
std::string ProblemTypeUri(const Problem& problem);
// The HTTP reason phrase of the status ("Bad Request").
std::string ProblemTitle(int status);
// {"type", "title", "status", "detail"} as application/problem+json.
std::string ProblemJson(const Problem& problem);

template <typename T>
class [[nodiscard]] ApiResult {
 public:
  ApiResult(T value) : state_(std::move(value)) {}
  ApiResult(Problem problem) : state_(std::move(problem)) {}

  bool ok() const { return std::holds_alternative<T>(state_); }
  T& value() { return std::get<T>(state_); }
  const T& value() const { return std::get<T>(state_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Problem& problem() const { return std::get<Problem>(state_); }

 private:
  std::variant<T, Problem> state_;
};

}  // namespace custos::fleet
