// Fuzzes fleetd's API request parsing: the request target (path and query),
// the event filters built from it, and each JSON body parser. The first
// byte picks the body parser; the rest is the input. Refusals must be 4xx.
#include <cstdint>
#include <string>

#include "fleet/api_requests.h"

namespace {

template <typename T>
void CheckRefusal(const custos::fleet::ApiResult<T>& result) {
  if (!result.ok() && (result.problem().status < 400 || result.problem().status > 499)) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  using namespace custos::fleet;
  switch (data[0] % 6) {
    case 0: {
      auto target = ParseTarget(input);
      CheckRefusal(target);
      if (target.ok()) {
        CheckRefusal(ParseEventQuery(target->query));
        CheckRefusal(ParseSensorListQuery(target->query));
        for (const auto& segment : target->path) {
          if (segment.empty()) __builtin_trap();
        }
      }
      break;
    }
    case 1:
      CheckRefusal(ParseEnrollRequest(input));
      break;
    case 2:
      CheckRefusal(ParseTokenRequest(input));
      break;
    case 3:
      CheckRefusal(ParseDesiredStateRequest(input));
      break;
    case 4:
      CheckRefusal(ParseEmptyRequest(input));
      break;
    case 5: {
      auto token = ParseTokenRequest(input);
      if (token.ok() && !IsValidIdentifier(token->tenant)) __builtin_trap();
      break;
    }
  }
  return 0;
}
