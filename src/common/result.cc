#include "common/result.h"

#include <cerrno>
#include <cstring>

namespace custos {

Error ErrnoError(const std::string& what, int error_number) {
  return Error{what + ": " + std::strerror(error_number)};
}

Error ErrnoError(const std::string& what) { return ErrnoError(what, errno); }

}  // namespace custos
