// One simulated sensor's channel to the fleet: a mutual-TLS WebSocket that
// says hello, sends event batches by a Plan and times each event to its ack.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/fleet/batch_writer.h"
#include "bench/fleet/net.h"
#include "bench/fleet/sensor.h"
#include "bench/fleet/support.h"

namespace custos::fleetbench {

enum class Load {
  kRate,   // `events_per_tick` events every `tick`
  kFlood,  // full batches whenever the window has room
};

struct Plan {
  Load load = Load::kRate;
  Clock::duration tick = std::chrono::milliseconds(100);
  std::size_t events_per_tick = 2;
  std::size_t batch_events = 500;
  std::size_t event_bytes = 200;
  bool record_latency = true;
};

// One sensor's WebSocket for one phase. Lives on one io_context.
class Channel : public std::enable_shared_from_this<Channel> {
 public:
  Channel(asio::io_context& io, Sensor& sensor, const Plan& plan,
          std::shared_ptr<const BatchWriter> writer)
      : sensor_(sensor),
        plan_(plan),
        writer_(std::move(writer)),
        ws_(io, *sensor.tls),
        deadline_(io),
        tick_timer_(io),
        heartbeat_timer_(io) {}

  // `connected` runs once: after the welcome, or after a failure.
  void Connect(std::function<void()> connected);

  // Sends from `start` until `end`, then waits for every ack and closes.
  // `finished` runs once: after the close, or after a failure.
  void Run(Clock::time_point start, Clock::time_point end, std::function<void()> finished);

  const std::string& error() const { return error_; }
  std::vector<std::uint32_t>& latencies_us() { return latencies_us_; }
  std::uint64_t acked_in_run() const { return sensor_.acked - acked_before_; }
  std::uint64_t batches_acked() const { return batches_acked_; }
  Clock::time_point last_ack() const { return last_ack_; }
  Clock::duration connect_time() const { return connect_time_; }

 private:
  struct Batch {
    std::uint64_t id;
    std::uint64_t last_seq;
  };

  // connecting
  void OnConnect(beast::error_code error);
  void OnTlsHandshake(beast::error_code error);
  void OnUpgrade(beast::error_code error);
  void OnWelcome(const json& message);
  // messages
  void Read();
  void OnRead(beast::error_code error);
  bool OnAck(const json& message);
  // sending
  void OnTick();
  void Make(std::size_t count);
  void Pump();
  std::uint64_t sent_up_to() const;
  void SendHeartbeat();
  void Send(std::string text);
  void WriteNext();
  void OnWrite(beast::error_code error);
  // ending
  void Close();
  void CloseNow();
  void ArmDeadline(Clock::duration after, std::string why);
  void Fail(const std::string& why);
  void Notify();

  Sensor& sensor_;
  const Plan plan_;
  const std::shared_ptr<const BatchWriter> writer_;
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws_;
  asio::steady_timer deadline_, tick_timer_, heartbeat_timer_;
  beast::flat_buffer buffer_;
  std::deque<std::string> outbox_;
  std::deque<Batch> inflight_;
  std::deque<Clock::time_point> made_;  // when each unacknowledged seq was made
  std::vector<std::uint32_t> latencies_us_;
  std::function<void()> connected_, finished_;
  std::chrono::seconds heartbeat_{5};
  Clock::time_point connect_start_, next_tick_, end_, last_ack_;
  Clock::duration connect_time_{};
  std::uint64_t acked_before_ = 0;
  std::uint64_t batches_acked_ = 0;
  std::string error_;
  bool welcomed_ = false, writing_ = false, closing_ = false, failed_ = false;
  bool generating_ = true;
};

}  // namespace custos::fleetbench
