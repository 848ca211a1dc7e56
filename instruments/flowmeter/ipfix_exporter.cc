#include "ipfix_exporter.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>

namespace custos::flowmeter {
namespace {

constexpr std::uint16_t kVersion = 10;
constexpr std::size_t kHeaderBytes = 16;
constexpr std::size_t kSetHeaderBytes = 4;
constexpr std::uint16_t kTemplateSetId = 2;
constexpr std::uint32_t kReversePen = 29305;  // RFC 5103

struct Element {
  std::uint16_t id;
  std::uint16_t length;
  bool reverse = false;
};

// layer2OctetDeltaCount (352), not octetDeltaCount (1): the meter counts
// frame bytes with the link header, and octetDeltaCount means IP bytes only.
// tcpControlBits is 16 bits in the registry; one byte is its reduced size.
constexpr Element kCommon[] = {
    {7, 2},         {11, 2},      {4, 1},       {58, 2},  {352, 8}, {2, 8},   {6, 1},
    {352, 8, true}, {2, 8, true}, {6, 1, true}, {152, 8}, {153, 8}, {136, 1},
};
constexpr Element kIpv4Addresses[] = {{8, 4}, {12, 4}};
constexpr Element kIpv6Addresses[] = {{27, 16}, {28, 16}};

constexpr std::size_t RecordBytes(bool ipv6) {
  std::size_t bytes = 0;
  for (const auto& element : kCommon) bytes += element.length;
  for (const auto& element : ipv6 ? kIpv6Addresses : kIpv4Addresses) bytes += element.length;
  return bytes;
}

constexpr std::size_t TemplateRecordBytes() {
  std::size_t bytes = 4 + 4 * 2;  // template header, two address elements
  for (const auto& element : kCommon) bytes += element.reverse ? 8 : 4;
  return bytes;
}

constexpr std::size_t kTemplateSetBytes = kSetHeaderBytes + 2 * TemplateRecordBytes();
constexpr std::size_t kSmallestMessage =
    kHeaderBytes + kTemplateSetBytes + kSetHeaderBytes + RecordBytes(true);

void Put8(std::vector<std::uint8_t>& out, std::uint8_t value) { out.push_back(value); }
void Put16(std::vector<std::uint8_t>& out, std::uint16_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value));
}
void Put32(std::vector<std::uint8_t>& out, std::uint32_t value) {
  Put16(out, static_cast<std::uint16_t>(value >> 16));
  Put16(out, static_cast<std::uint16_t>(value));
}
void Put64(std::vector<std::uint8_t>& out, std::uint64_t value) {
  Put32(out, static_cast<std::uint32_t>(value >> 32));
  Put32(out, static_cast<std::uint32_t>(value));
}
void Patch16(std::vector<std::uint8_t>& out, std::size_t at, std::uint16_t value) {
  out[at] = static_cast<std::uint8_t>(value >> 8);
  out[at + 1] = static_cast<std::uint8_t>(value);
}
void Patch32(std::vector<std::uint8_t>& out, std::size_t at, std::uint32_t value) {
  Patch16(out, at, static_cast<std::uint16_t>(value >> 16));
  Patch16(out, at + 2, static_cast<std::uint16_t>(value));
}

void PutTemplate(std::vector<std::uint8_t>& out, std::uint16_t id, bool ipv6) {
  const auto& addresses = ipv6 ? kIpv6Addresses : kIpv4Addresses;
  Put16(out, id);
  Put16(out, static_cast<std::uint16_t>(std::size(addresses) + std::size(kCommon)));
  auto put = [&](const Element& element) {
    Put16(out, element.reverse ? element.id | 0x8000 : element.id);
    Put16(out, element.length);
    if (element.reverse) Put32(out, kReversePen);
  };
  for (const auto& element : addresses) put(element);
  for (const auto& element : kCommon) put(element);
}

std::uint8_t EndReason(net::FlowEnd end) {
  switch (end) {
    case net::FlowEnd::kIdle:
      return 1;  // idle timeout
    case net::FlowEnd::kActive:
      return 2;  // active timeout
    case net::FlowEnd::kTcpClosed:
      return 3;  // end of flow detected
    case net::FlowEnd::kFlushed:
      return 4;  // forced end
    case net::FlowEnd::kEvicted:
      return 5;  // lack of resources
  }
  return 0;
}

void PutRecord(std::vector<std::uint8_t>& out, const net::FlowRecord& flow) {
  std::size_t address_bytes = flow.src.version == 6 ? 16 : 4;
  out.insert(out.end(), flow.src.bytes.begin(), flow.src.bytes.begin() + address_bytes);
  out.insert(out.end(), flow.dst.bytes.begin(), flow.dst.bytes.begin() + address_bytes);
  Put16(out, flow.src_port);
  Put16(out, flow.dst_port);
  Put8(out, flow.protocol);
  Put16(out, flow.vlan);
  Put64(out, flow.to_dst.bytes);
  Put64(out, flow.to_dst.packets);
  Put8(out, flow.to_dst.tcp_flags);
  Put64(out, flow.to_src.bytes);
  Put64(out, flow.to_src.packets);
  Put8(out, flow.to_src.tcp_flags);
  Put64(out, flow.first_us / 1000);
  Put64(out, flow.last_us / 1000);
  Put8(out, EndReason(flow.end));
}

Result<std::uint16_t> ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return Error{"the port must be 1 to 65535"};
  std::uint32_t port = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return Error{"the port must be 1 to 65535"};
    port = port * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (port == 0 || port > 65535) return Error{"the port must be 1 to 65535"};
  return static_cast<std::uint16_t>(port);
}

// A bare address, IPv4 or IPv6 (brackets allowed), with the given port.
Result<SocketAddress> ParseHost(std::string_view host, std::uint16_t port) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  std::string text(host);
  SocketAddress address;
  if (text.find(':') != std::string::npos) {
    auto& v6 = reinterpret_cast<sockaddr_in6&>(address.storage);
    if (::inet_pton(AF_INET6, text.c_str(), &v6.sin6_addr) != 1)
      return Error{std::string("'") + text + "' is not an IPv6 address"};
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    address.length = sizeof v6;
  } else {
    auto& v4 = reinterpret_cast<sockaddr_in&>(address.storage);
    if (::inet_pton(AF_INET, text.c_str(), &v4.sin_addr) != 1)
      return Error{std::string("'") + text + "' is not an IPv4 address (names are not resolved)"};
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    address.length = sizeof v4;
  }
  return address;
}

Error Bad(const std::string& setting, const std::string& value, const std::string& why) {
  std::string message = "setting ";
  message += setting;
  message += ": '";
  message += value;
  message += "' ";
  message += why;
  return Error{message};
}

}  // namespace

Result<SocketAddress> ParseCollectorAddress(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find("]:");
    if (close == std::string_view::npos) return Error{"expected [IPv6]:port"};
    host = text.substr(0, close + 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return Error{"expected IPv4:port or [IPv6]:port"};
    host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos)
      return Error{"an IPv6 address needs brackets: [IPv6]:port"};
    port = text.substr(colon + 1);
  }
  auto number = ParsePort(port);
  if (!number) return number.error();
  return ParseHost(host, *number);
}

Result<std::optional<IpfixOptions>> IpfixOptionsFromSettings(const nlohmann::json& settings) {
  if (!settings.is_object() || !settings.contains("ipfix")) {
    if (settings.is_object() && settings.contains("ipfix_source"))
      return Error{"setting ipfix_source: is set but ipfix is not"};
    return std::optional<IpfixOptions>();
  }
  const auto& value = settings["ipfix"];
  if (!value.is_string())
    return Bad("ipfix", value.dump(),
               "is not text like \"198.18.0.9:4739\" or \"[2001:db8::9]:4739\"");
  IpfixOptions options;
  options.collector = value.get<std::string>();
  auto collector = ParseCollectorAddress(options.collector);
  if (!collector) {
    return Bad("ipfix", options.collector,
               std::string("is not a collector address: ") + collector.error().message);
  }
  if (settings.contains("ipfix_source")) {
    const auto& source = settings["ipfix_source"];
    if (!source.is_string()) return Bad("ipfix_source", source.dump(), "is not text");
    options.source = source.get<std::string>();
    auto parsed = ParseHost(options.source, 0);
    if (!parsed)
      return Bad("ipfix_source", options.source,
                 std::string("is not an address: ") + parsed.error().message);
    if (parsed->family() != collector->family())
      return Bad("ipfix_source", options.source, "is not of the collector's address family");
  }
  if (settings.contains("ipfix_domain_id")) {
    const auto& domain = settings["ipfix_domain_id"];
    if (!domain.is_number_unsigned() || domain.get<std::uint64_t>() > 0xffffffffu)
      return Bad("ipfix_domain_id", domain.dump(), "is not a whole number from 0 to 4294967295");
    options.observation_domain = static_cast<std::uint32_t>(domain.get<std::uint64_t>());
  }
  return std::optional<IpfixOptions>(std::move(options));
}

Result<IpfixExporter> IpfixExporter::Open(IpfixOptions options) {
  if (options.max_message_bytes < kSmallestMessage || options.max_message_bytes > 65'507) {
    return Error{std::string("ipfix: max_message_bytes must be ") +
                 std::to_string(kSmallestMessage) + " to 65507"};
  }
  auto collector = ParseCollectorAddress(options.collector);
  if (!collector)
    return Context(std::string("ipfix collector '") + options.collector + "'", collector.error());
  bool ipv6 = collector->family() == AF_INET6;
  UniqueFd socket(::socket(collector->family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket.valid()) return ErrnoError("ipfix: socket");
  if (!options.interface.empty() &&
      ::setsockopt(socket.get(), SOL_SOCKET, SO_BINDTODEVICE, options.interface.c_str(),
                   static_cast<socklen_t>(options.interface.size())) != 0) {
    return ErrnoError(std::string("ipfix: bind to interface ") + options.interface);
  }
  if (!options.source.empty()) {
    auto source = ParseHost(options.source, 0);
    if (!source) return Context("ipfix source", source.error());
    // The source need not be an address of this host: sensord sets none on
    // an active interface. Transparent sockets may send from any address.
    int on = 1;
    int level = ipv6 ? SOL_IPV6 : SOL_IP;
    int option = ipv6 ? IPV6_TRANSPARENT : IP_TRANSPARENT;
    if (::setsockopt(socket.get(), level, option, &on, sizeof on) != 0)
      return ErrnoError(std::string("ipfix: send from ") + options.source + " (needs CAP_NET_RAW)");
    if (::bind(socket.get(), reinterpret_cast<const sockaddr*>(&source->storage), source->length) !=
        0) {
      return ErrnoError(std::string("ipfix: bind to ") + options.source);
    }
  }
  // Connected, so the kernel reports an unreachable collector on later sends.
  if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&collector->storage),
                collector->length) != 0) {
    return ErrnoError(std::string("ipfix: connect to ") + options.collector);
  }
  IpfixExporter exporter(std::move(options), std::move(socket));
  exporter.StartMessage(exporter.Now());
  exporter.Flush();
  return exporter;
}

IpfixExporter::IpfixExporter(IpfixOptions options, UniqueFd socket)
    : options_(std::move(options)), socket_(std::move(socket)) {
  message_.reserve(options_.max_message_bytes);
}

std::uint64_t IpfixExporter::Now() const {
  if (options_.clock_ms) return options_.clock_ms();
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

bool IpfixExporter::BatchDue(std::uint64_t now_ms) const {
  return now_ms < message_started_ms_ ||
         now_ms >= message_started_ms_ + static_cast<std::uint64_t>(options_.max_delay.count());
}

void IpfixExporter::StartMessage(std::uint64_t now_ms) {
  message_.assign(kHeaderBytes, 0);
  set_start_ = 0;
  set_template_ = 0;
  message_records_ = 0;
  message_started_ms_ = now_ms;
  auto refresh = static_cast<std::uint64_t>(options_.template_refresh.count());
  // A clock set back counts as time up, so nothing waits for it to catch up.
  message_has_templates_ = !templates_sent_ms_ || now_ms < *templates_sent_ms_ ||
                           now_ms >= *templates_sent_ms_ + refresh;
  if (message_has_templates_) {
    Put16(message_, kTemplateSetId);
    Put16(message_, static_cast<std::uint16_t>(kTemplateSetBytes));
    PutTemplate(message_, kIpfixTemplateIpv4, false);
    PutTemplate(message_, kIpfixTemplateIpv6, true);
  }
}

void IpfixExporter::StartDataSet(std::uint16_t template_id) {
  set_start_ = message_.size();
  set_template_ = template_id;
  Put16(message_, template_id);
  Put16(message_, 0);  // length, patched by CloseSet
}

void IpfixExporter::CloseSet() {
  if (set_template_ == 0) return;
  Patch16(message_, set_start_ + 2, static_cast<std::uint16_t>(message_.size() - set_start_));
  set_template_ = 0;
}

void IpfixExporter::Add(const net::FlowRecord& flow) {
  bool ipv6 = flow.src.version == 6;
  std::uint16_t template_id = ipv6 ? kIpfixTemplateIpv6 : kIpfixTemplateIpv4;
  auto now = Now();
  if (message_.empty()) StartMessage(now);
  auto needed = [&] {
    return RecordBytes(ipv6) + (set_template_ == template_id ? 0 : kSetHeaderBytes);
  };
  if (message_.size() + needed() > options_.max_message_bytes) {
    Flush();
    StartMessage(now);
  }
  if (set_template_ != template_id) {
    CloseSet();
    StartDataSet(template_id);
  }
  PutRecord(message_, flow);
  ++message_records_;
  if (BatchDue(now)) Flush();
}

void IpfixExporter::Tick() {
  if (message_records_ == 0) return;
  if (BatchDue(Now())) Flush();
}

void IpfixExporter::Flush() {
  if (message_.empty()) return;
  if (message_records_ == 0 && !message_has_templates_) {
    message_.clear();
    return;
  }
  CloseSet();
  Send();
  message_.clear();
  message_records_ = 0;
}

void IpfixExporter::Send() {
  auto now = Now();
  Patch16(message_, 0, kVersion);
  Patch16(message_, 2, static_cast<std::uint16_t>(message_.size()));
  Patch32(message_, 4, static_cast<std::uint32_t>(now / 1000));
  Patch32(message_, 8, sequence_);
  Patch32(message_, 12, options_.observation_domain);
  // Records in a lost datagram still advance the sequence, so the collector
  // sees the gap.
  sequence_ += message_records_;
  auto sent = ::send(socket_.get(), message_.data(), message_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent == static_cast<ssize_t>(message_.size())) {
    ++counters_.messages;
    counters_.records += message_records_;
    if (message_has_templates_) templates_sent_ms_ = message_started_ms_;
  } else {
    ++counters_.send_errors;
    counters_.records_dropped += message_records_;
    counters_.last_error = sent < 0 ? std::strerror(errno) : "short send";
  }
}

std::string IpfixExporter::Summary() const {
  std::string text = "ipfix ";
  text += std::to_string(counters_.messages);
  text += " messages, ";
  text += std::to_string(counters_.records);
  text += " records, ";
  text += std::to_string(counters_.send_errors);
  text += " send errors";
  if (counters_.send_errors != 0) {
    text += " (";
    text += std::to_string(counters_.records_dropped);
    text += " records lost, last: ";
    text += counters_.last_error;
    text += ")";
  }
  return text;
}

}  // namespace custos::flowmeter
