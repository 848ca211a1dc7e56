// "HOST:PORT" addresses as the command line and the protocol write them:
// "fleet.example.com:8443", "198.18.0.1:8444", "[2001:db8::1]:8443".
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace custos::fleet {

struct HostPort {
  std::string host;  // without brackets
  std::uint16_t port = 0;
};

// The port is required (1-65535; 0 too when `allow_port_zero`, for tests
// that let the kernel choose).
Result<HostPort> ParseHostPort(std::string_view text, bool allow_port_zero = false);
// Brackets IPv6 addresses.
std::string FormatHostPort(std::string_view host, std::uint16_t port);

}  // namespace custos::fleet
