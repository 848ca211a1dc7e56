// The uplink's side of the channel's message formats (docs/fleet-protocol.md):
// how an event is kept in the spool, how a batch goes on the wire, and what
// a heartbeat reports. Pure functions, safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "sensor/event_spool.h"

namespace custos::sensor {

// Limits of an `events` message: at most this many events and bytes, and
// this many batches sent but not acknowledged.
inline constexpr std::size_t kMaxBatchEvents = 500;
inline constexpr std::size_t kMaxBatchBytes = 1u << 20;
inline constexpr std::size_t kMaxUnackedBatches = 4;
// A spool record larger than this is refused, so that any one event still
// fits in a batch with its seq and the message around it.
inline constexpr std::uint32_t kMaxRecordBytes = kMaxBatchBytes - 4096;
// What ReadBatch may return so that the message stays within kMaxBatchBytes.
inline constexpr std::size_t kBatchRecordBudget = kMaxBatchBytes - kMaxBatchEvents * 32 - 128;

// The spool record of one bus event: {"topic","instrument","event"} as JSON
// text, the event being the publisher's payload as a string (invalid UTF-8
// replaced, never parsed here).
std::string EncodeSpoolRecord(std::string_view topic, std::string_view instrument,
                              std::string_view payload);

// {"type":"events","batch":B,"events":[{"seq":N,"topic":...},...]}: each
// record is spliced in as it is, with its seq added in front.
std::string EncodeEventsMessage(std::uint64_t batch, const std::vector<SpooledEvent>& events);

// What a heartbeat's `health` needs besides the local status snapshot.
struct HealthInputs {
  nlohmann::json local_status;  // Supervisor::StatusJson(), or null before the first
  std::string data_root;        // whose free space is reported
  SpoolStats spool;
  std::uint64_t feed_dropped = 0;  // refused by the full hand-over queue
  nlohmann::json uplink_counters = nlohmann::json::object();
};
nlohmann::json BuildHealth(const HealthInputs& inputs);

nlohmann::json SpoolJson(const SpoolStats& stats, std::uint64_t feed_dropped);

}  // namespace custos::sensor
