// A sensor's channel: connect and hello, send batches by the plan, take the
// acks and time every event, and close once all is acknowledged.
#include "bench/fleet/channel.h"

#include <algorithm>
#include <random>
#include <utility>

namespace custos::fleetbench {
namespace {

constexpr std::size_t kWindow = 4;  // unacknowledged batches the protocol allows

}  // namespace

void Channel::Connect(std::function<void()> connected) {
  connected_ = std::move(connected);
  connect_start_ = Clock::now();
  ArmDeadline(kStepTimeout, "no welcome within 15 s");
  beast::get_lowest_layer(ws_).async_connect(
      sensor_.channel,
      [self = shared_from_this()](beast::error_code error) { self->OnConnect(error); });
}

void Channel::Run(Clock::time_point start, Clock::time_point end, std::function<void()> finished) {
  finished_ = std::move(finished);
  if (failed_) return Notify();
  end_ = end;
  acked_before_ = sensor_.acked;
  ArmDeadline(end - Clock::now() + kDrainTimeout, "events not all acknowledged 30 s after the end");
  next_tick_ = start;
  if (plan_.load == Load::kRate) {
    // Sensors tick out of step, as real ones do.
    std::uniform_int_distribution<std::int64_t> phase(0, plan_.tick.count() - 1);
    std::mt19937_64 random(std::hash<std::string>{}(sensor_.id));
    next_tick_ += Clock::duration(phase(random));
  }
  tick_timer_.expires_at(next_tick_);
  tick_timer_.async_wait([self = shared_from_this()](beast::error_code error) {
    if (!error) self->OnTick();
  });
}

// --- connecting ----------------------------------------------------------

void Channel::OnConnect(beast::error_code error) {
  if (error) return Fail("connect: " + error.message());
  ws_.next_layer().async_handshake(ssl::stream_base::client,
                                   [self = shared_from_this()](beast::error_code handshake_error) {
                                     self->OnTlsHandshake(handshake_error);
                                   });
}

void Channel::OnTlsHandshake(beast::error_code error) {
  if (error) return Fail("TLS handshake: " + error.message());
  ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  std::string host = sensor_.channel.address().to_string();
  host += ':';
  host += std::to_string(sensor_.channel.port());
  ws_.async_handshake(host, "/v1/channel",
                      [self = shared_from_this()](beast::error_code upgrade_error) {
                        self->OnUpgrade(upgrade_error);
                      });
}

void Channel::OnUpgrade(beast::error_code error) {
  if (error) return Fail("WebSocket upgrade: " + error.message());
  ws_.text(true);
  Send(json{{"type", "hello"},
            {"version", 1},
            {"sensor_id", sensor_.id},
            {"state_version", 0},
            {"spool", sensor_.acked + 1}}
           .dump());
  Read();
}

void Channel::OnWelcome(const json& message) {
  if (StringField(message, "sensor_id") != sensor_.id) {
    return Fail("welcome names another sensor: " + message.dump());
  }
  welcomed_ = true;
  auto seconds = std::clamp<std::uint64_t>(UnsignedField(message, "heartbeat_seconds"), 1, 3600);
  heartbeat_ = std::chrono::seconds(seconds);
  connect_time_ = Clock::now() - connect_start_;
  deadline_.cancel();
  SendHeartbeat();
  Notify();
}

// --- messages ------------------------------------------------------------

void Channel::Read() {
  ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code error, std::size_t) {
    self->OnRead(error);
  });
}

void Channel::OnRead(beast::error_code error) {
  if (error) {
    if (closing_) return;
    std::string why = "the fleet closed the channel: " + error.message();
    if (ws_.reason().code != websocket::close_code::none) {
      why += " (" + std::string(ws_.reason().reason.c_str()) + ")";
    }
    return Fail(why);
  }
  json message = json::parse(beast::buffers_to_string(buffer_.data()), nullptr, false);
  buffer_.consume(buffer_.size());
  std::string type = StringField(message, "type");
  if (type == "ack") {
    if (!OnAck(message)) return;
  } else if (type == "welcome" && !welcomed_) {
    OnWelcome(message);
  } else if (type == "error") {
    return Fail("the fleet sent error: " + StringField(message, "detail"));
  } else if (type.empty()) {
    return Fail("the fleet sent something that is not a message");
  }
  // desired_state and command do not come: the bench sets none.
  if (!failed_) Read();
}

// An ack covers every seq up to its up_to_seq, whichever batch it names.
bool Channel::OnAck(const json& message) {
  auto up_to = UnsignedField(message, "up_to_seq");
  if (up_to > sent_up_to()) {
    Fail("ack beyond the last seq sent (" + std::to_string(sent_up_to()) + "): " + message.dump());
    return false;
  }
  while (!inflight_.empty() && inflight_.front().last_seq <= up_to) {
    inflight_.pop_front();
    ++batches_acked_;
  }
  auto now = Clock::now();
  while (sensor_.acked < up_to) {
    if (plan_.record_latency) {
      auto took = std::chrono::duration_cast<std::chrono::microseconds>(now - made_.front());
      latencies_us_.push_back(static_cast<std::uint32_t>(took.count()));
    }
    made_.pop_front();
    ++sensor_.acked;
  }
  last_ack_ = now;
  Pump();
  return true;
}

// --- sending -------------------------------------------------------------

void Channel::OnTick() {
  if (closing_ || failed_) return;
  if (next_tick_ >= end_) {
    generating_ = false;
    return Pump();
  }
  if (plan_.load == Load::kRate) {
    Make(plan_.events_per_tick);
    next_tick_ += plan_.tick;
  } else {
    next_tick_ = end_;  // the flood fills the window from the acks on
  }
  Pump();
  tick_timer_.expires_at(next_tick_);
  tick_timer_.async_wait([self = shared_from_this()](beast::error_code error) {
    if (!error) self->OnTick();
  });
}

void Channel::Make(std::size_t count) {
  auto now = Clock::now();
  for (std::size_t i = 0; i < count; ++i) made_.push_back(now);
  sensor_.next_seq += count;
}

// Sends what the window allows; closes once all is made and acknowledged.
void Channel::Pump() {
  if (closing_ || failed_) return;
  while (inflight_.size() < kWindow) {
    if (plan_.load == Load::kFlood && generating_ && Clock::now() < end_) Make(plan_.batch_events);
    std::uint64_t unsent = sensor_.next_seq - 1 - sent_up_to();
    if (unsent == 0) break;
    std::size_t count =
        static_cast<std::size_t>(std::min<std::uint64_t>(unsent, plan_.batch_events));
    std::uint64_t first = sent_up_to() + 1;
    std::uint64_t id = sensor_.next_batch++;
    inflight_.push_back({id, first + count - 1});
    Send(writer_->Build(id, first, count));
  }
  if (!generating_ && inflight_.empty() && sensor_.acked == sensor_.next_seq - 1) Close();
}

std::uint64_t Channel::sent_up_to() const {
  return inflight_.empty() ? sensor_.acked : inflight_.back().last_seq;
}

void Channel::SendHeartbeat() {
  if (closing_ || failed_) return;
  json health = {
      {"instruments", json::array({{{"name", "bench"}, {"state", "running"}, {"restarts", 0}}})},
      {"counters", json::object()},
      {"disk", {{"data_root_free_bytes", 10'000'000'000ULL}}},
      {"load", {0.5, 0.5, 0.5}},
      {"spool", {{"pending", sensor_.next_seq - 1 - sensor_.acked}, {"dropped_full", 0}}},
      {"locked", false}};
  Send(json{{"type", "heartbeat"}, {"health", std::move(health)}}.dump());
  heartbeat_timer_.expires_after(heartbeat_);
  heartbeat_timer_.async_wait([self = shared_from_this()](beast::error_code error) {
    if (!error) self->SendHeartbeat();
  });
}

void Channel::Send(std::string text) {
  outbox_.push_back(std::move(text));
  if (!writing_) WriteNext();
}

void Channel::WriteNext() {
  writing_ = true;
  ws_.async_write(
      asio::buffer(outbox_.front()),
      [self = shared_from_this()](beast::error_code error, std::size_t) { self->OnWrite(error); });
}

void Channel::OnWrite(beast::error_code error) {
  writing_ = false;
  outbox_.pop_front();
  if (failed_) return;
  if (error) return Fail("send: " + error.message());
  if (!outbox_.empty()) return WriteNext();
  if (closing_) CloseNow();
}

// --- ending --------------------------------------------------------------

void Channel::Close() {
  if (closing_) return;
  closing_ = true;
  tick_timer_.cancel();
  heartbeat_timer_.cancel();
  if (!writing_) CloseNow();
}

void Channel::CloseNow() {
  ws_.async_close(websocket::close_code::normal, [self = shared_from_this()](beast::error_code) {
    self->deadline_.cancel();
    self->Notify();
  });
}

void Channel::ArmDeadline(Clock::duration after, std::string why) {
  deadline_.expires_after(after);
  deadline_.async_wait([self = shared_from_this(), why = std::move(why)](beast::error_code error) {
    if (!error) self->Fail(why);
  });
}

void Channel::Fail(const std::string& why) {
  if (failed_) return;
  failed_ = true;
  error_ = sensor_.id + ": " + why;
  deadline_.cancel();
  tick_timer_.cancel();
  heartbeat_timer_.cancel();
  beast::error_code ignored;
  beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(ws_).socket().close(ignored);
  Notify();
}

// Whoever waits: the connect callback first, then the run's.
void Channel::Notify() {
  if (connected_) return std::exchange(connected_, nullptr)();
  if (finished_) std::exchange(finished_, nullptr)();
}

}  // namespace custos::fleetbench
