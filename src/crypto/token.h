// One-time enrollment tokens. The fleet hands an operator a random token,
// stores only its SHA-256, and a sensor proves it holds the token by sending
// it with its CSR. Thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace custos::crypto {

// 32 bytes from RAND_bytes, base64url without padding (43 characters).
Result<std::string> GenerateEnrollmentToken();

// Lower-case hex SHA-256 of the token text: what the registry stores.
Result<std::string> HashEnrollmentToken(std::string_view token);

// Compares in time that depends only on the lengths, not on where the
// contents first differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace custos::crypto
