// Exports the flow meter's records as IPFIX (RFC 7011) over UDP to one
// collector. Each FlowRecord is one biflow record (RFC 5103): forward counts
// under IANA elements, reverse counts under the same elements with enterprise
// 29305. Templates go out at start and again with the first data after every
// refresh period. Records are batched into messages of at most
// `max_message_bytes`. The socket is non-blocking: a datagram the kernel does
// not take at once is dropped and counted, so the packet loop never waits.
// Not thread-safe: one exporter belongs to the thread that meters.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"
#include "custos/result.h"
#include "net/flow_table.h"

namespace custos::flowmeter {

inline constexpr std::uint16_t kIpfixTemplateIpv4 = 256;
inline constexpr std::uint16_t kIpfixTemplateIpv6 = 257;

// A literal socket address: "198.18.0.9:4739" or "[2001:db8::9]:4739".
// No names are resolved: an instrument has no resolver to ask.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family() const { return storage.ss_family; }
};
Result<SocketAddress> ParseCollectorAddress(std::string_view text);

struct IpfixOptions {
  std::string collector;  // as ParseCollectorAddress takes it
  std::string source;     // address to send from; empty: the kernel picks
  std::string interface;  // send only on this interface; empty: by the routes
  std::uint32_t observation_domain = 1;
  std::size_t max_message_bytes = 1400;
  std::chrono::milliseconds template_refresh{30'000};
  std::chrono::milliseconds max_delay{1'000};  // longest a record waits in a batch
  std::function<std::uint64_t()> clock_ms;     // wall clock in ms; the system's when empty
};

// Reads `ipfix`, `ipfix_source` and `ipfix_domain_id` from the instrument's
// settings. nullopt when `ipfix` is absent; an Error naming the setting and
// the bad value otherwise.
Result<std::optional<IpfixOptions>> IpfixOptionsFromSettings(const nlohmann::json& settings);

struct IpfixCounters {
  std::uint64_t messages = 0;         // datagrams the kernel took
  std::uint64_t records = 0;          // data records in them
  std::uint64_t send_errors = 0;      // datagrams refused (each is lost)
  std::uint64_t records_dropped = 0;  // data records in refused datagrams
  std::string last_error;
};

class IpfixExporter {
 public:
  // Makes the socket and sends the templates.
  static Result<IpfixExporter> Open(IpfixOptions options);

  void Add(const net::FlowRecord& flow);
  // Sends a batch that has waited `max_delay`; call often (it is cheap when idle).
  void Tick();
  // Sends whatever is batched.
  void Flush();

  const IpfixCounters& counters() const { return counters_; }
  // One line for the status log: messages, records, send errors.
  std::string Summary() const;

 private:
  IpfixExporter(IpfixOptions options, UniqueFd socket);
  std::uint64_t Now() const;
  bool BatchDue(std::uint64_t now_ms) const;  // also when the clock went back
  void StartMessage(std::uint64_t now_ms);
  void StartDataSet(std::uint16_t template_id);
  void CloseSet();
  void Send();

  IpfixOptions options_;
  UniqueFd socket_;
  IpfixCounters counters_;
  std::vector<std::uint8_t> message_;
  std::size_t set_start_ = 0;       // offset of the open set's header, 0: none open
  std::uint16_t set_template_ = 0;  // the open data set's template, 0: none
  std::uint32_t message_records_ = 0;
  bool message_has_templates_ = false;
  std::uint64_t message_started_ms_ = 0;
  std::uint32_t sequence_ = 0;  // data records handed to send() before, mod 2^32
  std::optional<std::uint64_t> templates_sent_ms_;
};

}  // namespace custos::flowmeter
