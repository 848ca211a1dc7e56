#include "fleet/host_port.h"

#include <charconv>

namespace custos::fleet {

Result<HostPort> ParseHostPort(std::string_view text, bool allow_port_zero) {
  std::string quoted = "address \"";
  quoted += text.substr(0, 300);
  quoted += "\"";
  HostPort parsed;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Error{quoted + " must be [IPv6]:PORT"};
    }
    parsed.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return Error{quoted + " must be HOST:PORT"};
    parsed.host = std::string(text.substr(0, colon));
    if (parsed.host.find(':') != std::string::npos) {
      return Error{quoted + ": write IPv6 addresses in brackets, [::1]:PORT"};
    }
    port = text.substr(colon + 1);
  }
  if (parsed.host.empty()) return Error{quoted + " has no host"};
  unsigned value = 0;
  auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || value > 65535 ||
      (value == 0 && !allow_port_zero)) {
    return Error{quoted + " has no valid port"};
  }
  parsed.port = static_cast<std::uint16_t>(value);
  return parsed;
}

std::string FormatHostPort(std::string_view host, std::uint16_t port) {
  std::string text;
  if (host.find(':') != std::string_view::npos) {
    text = "[";
    text += host;
    text += "]";
  } else {
    text = std::string(host);
  }
  text += ':';
  text += std::to_string(port);
  return text;
}

}  // namespace custos::fleet
