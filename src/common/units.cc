#include "common/units.h"

#include <charconv>
#include <limits>

namespace custos {
namespace {

// Splits "128M" into 128 and "M"; fails on a missing or overflowing number.
Result<std::pair<std::uint64_t, std::string>> SplitNumber(const std::string& text) {
  std::uint64_t number = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [rest, code] = std::from_chars(begin, end, number);
  if (code == std::errc::result_out_of_range) return Error{"'" + text + "' is too large"};
  if (code != std::errc() || rest == begin)
    return Error{"'" + text + "' does not start with a number"};
  return std::make_pair(number, std::string(rest, end));
}

Result<std::uint64_t> Multiply(std::uint64_t number, std::uint64_t factor,
                               const std::string& text) {
  if (factor != 0 && number > std::numeric_limits<std::uint64_t>::max() / factor) {
    return Error{"'" + text + "' is too large"};
  }
  return number * factor;
}

}  // namespace

Result<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  auto split = SplitNumber(text);
  if (!split) return split.error();
  auto [number, unit] = *split;
  std::uint64_t factor = 0;
  if (unit == "ms")
    factor = 1;
  else if (unit == "s")
    factor = 1000;
  else if (unit == "m")
    factor = 60'000;
  else if (unit == "h")
    factor = 3'600'000;
  else if (unit == "d")
    factor = 86'400'000;
  else
    return Error{"'" + text + "' needs a unit: ms, s, m, h or d"};
  auto total = Multiply(number, factor, text);
  if (!total) return total.error();
  if (*total > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return Error{"'" + text + "' is too large"};
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(*total));
}

Result<std::uint64_t> ParseSize(const std::string& text) {
  auto split = SplitNumber(text);
  if (!split) return split.error();
  auto [number, unit] = *split;
  std::uint64_t factor = 0;
  if (unit.empty())
    factor = 1;
  else if (unit == "K")
    factor = 1ull << 10;
  else if (unit == "M")
    factor = 1ull << 20;
  else if (unit == "G")
    factor = 1ull << 30;
  else if (unit == "T")
    factor = 1ull << 40;
  else
    return Error{"'" + text + "' has an unknown unit (use K, M, G or T)"};
  return Multiply(number, factor, text);
}

std::string FormatDuration(std::chrono::milliseconds duration) {
  auto ms = duration.count();
  if (ms % 86'400'000 == 0 && ms != 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms % 3'600'000 == 0 && ms != 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms != 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0 && ms != 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace custos
