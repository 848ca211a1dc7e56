// sensord's uplink to the fleet (docs/fleet-protocol.md, "The channel"):
// it appends the events the UplinkFeed hands over to the durable spool,
// keeps one mutual-TLS WebSocket open to the fleet's channel (reconnecting
// with exponential backoff and jitter), says hello, sends the spool in
// order in batches with at most four unacknowledged, forgets events only
// when the fleet acknowledges them, and sends again from the first
// unacknowledged one after any reconnect. It sends heartbeats, and hands
// desired states and commands to the thread that owns the sensor through
// UplinkHooks::post.
//
// Threads: a spool writer (feed -> spool, one fdatasync per group) and a
// network thread (Boost.Asio). Public methods are thread-safe; Stop (or
// the destructor) must not be called from a hook.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "sensor/fleet_identity.h"
#include "sensor/uplink_feed.h"

namespace custos::sensor {

struct UplinkOptions {
  FleetIdentity identity;
  std::filesystem::path spool_dir;
  std::uint64_t spool_max_bytes = 256ull << 20;
  std::string data_root;  // its free space goes into heartbeats
  std::chrono::milliseconds heartbeat{std::chrono::seconds(5)};  // unless the fleet says otherwise
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{std::chrono::seconds(30)};
  std::chrono::milliseconds connect_timeout{
      std::chrono::seconds(10)};  // per step, welcome included
  std::chrono::milliseconds idle_timeout{
      std::chrono::seconds(30)};    // silence before a ping, twice: gone
  std::uint64_t state_version = 0;  // desired state applied at start (0: none)
};

struct UplinkHooks {
  // Runs a task on the thread that owns the sensor (sensord's event loop).
  std::function<void(std::function<void()>)> post;
  // Called on that thread. apply_state validates and applies a desired state
  // (docs/fleet-protocol.md); run_command answers {"ok": bool, "output": JSON}.
  std::function<Status(std::uint64_t version, const std::string& config)> apply_state;
  std::function<nlohmann::json(const nlohmann::json& command)> run_command;
};

class Uplink {
 public:
  // Opens the spool (recovering it) and starts both threads. A brand-new
  // spool starts its seqs at the current time in microseconds, so a spool
  // that was lost and re-created never reuses a seq the fleet holds.
  static Result<std::unique_ptr<Uplink>> Start(const UplinkOptions& options,
                                               std::shared_ptr<UplinkFeed> feed, UplinkHooks hooks);
  ~Uplink();
  Uplink(const Uplink&) = delete;
  Uplink& operator=(const Uplink&) = delete;

  // Closes the feed, writes what it still holds to the spool, closes the
  // channel politely (at most 2 s), and joins the threads. Idempotent.
  void Stop();

  // The sensor's status for heartbeats (Supervisor::StatusJson()); the
  // owner posts a fresh one from its own thread now and then.
  void SetLocalStatus(nlohmann::json status);

  // {"enabled", "sensor_id", "fleet", "connected", "last_error", "spool", ...}
  nlohmann::json StatusJson() const;

  class Impl;

 private:
  explicit Uplink(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace custos::sensor
