// Errors as values. Every fallible call inside Custos returns Result<T> (or
// Status); a daemon's edge turns the Error into one log line or API problem.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace custos {

struct Error {
  std::string message;
};

// Prefixes an error with where it happened: Context("runc create", err).
inline Error Context(const std::string& where, const Error& error) {
  return Error{where + ": " + error.message};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}
  Result(Error error) : state_(std::move(error)) {}

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<T>(state_); }
  const T& value() const { return std::get<T>(state_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T value_or(T fallback) const { return ok() ? value() : std::move(fallback); }
  const Error& error() const { return std::get<Error>(state_); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

// errno to a readable message: ErrnoError("open /x") -> "open /x: No such file".
Error ErrnoError(const std::string& what, int error_number);
Error ErrnoError(const std::string& what);

}  // namespace custos

// Returns early from the enclosing function when `expr` (a Result) failed.
#define CUSTOS_TRY(expr)                                             \
  do {                                                               \
    auto custos_try_result_ = (expr);                                \
    if (!custos_try_result_.ok()) return custos_try_result_.error(); \
  } while (0)
