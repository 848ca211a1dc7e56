#include "fleet/channel_session.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cstring>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/log.h"
#include "crypto/tls.h"
#include "fleet/channel_messages.h"
#include "fleet/problem.h"

namespace custos::fleet {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
// The close handshake gets this long; then the socket is closed regardless,
// so a revoked sensor is cut off well within the 2 s the protocol promises.
constexpr auto kCloseGrace = std::chrono::milliseconds(500);
// Heartbeats update the registry at once but the store (one fsync each)
// at most this often per sensor.
constexpr auto kHeartbeatPersistInterval = std::chrono::seconds(30);
// The protocol allows 4 unacknowledged batches; more is a broken sensor.
constexpr std::size_t kMaxQueuedBatches = 8;
constexpr char kChannelPath[] = "/v1/channel";
// A sensor fetches its data key here at boot, and confirms a re-key.
constexpr char kDataKeyPath[] = "/v1/data-key";
constexpr char kDataKeyConfirmPath[] = "/v1/data-key/confirm?version=";

std::string Base64(const KeyBytes& key) {
  std::string text(4 * ((KeyBytes::size() + 2) / 3) + 1, '\0');
  int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()), key.data(),
                               static_cast<int>(KeyBytes::size()));
  text.resize(static_cast<std::size_t>(length));
  return text;
}

class ChannelSession : public ChannelLink, public std::enable_shared_from_this<ChannelSession> {
 public:
  ChannelSession(tcp::socket socket, asio::ssl::context& context, FleetCore& core,
                 asio::thread_pool& blocking)
      : ws_(std::move(socket), context),
        core_(core),
        blocking_(blocking),
        close_timer_(ws_.get_executor()) {
    beast::error_code ignored;
    auto remote = beast::get_lowest_layer(ws_).socket().remote_endpoint(ignored);
    remote_ = remote.address().to_string() + ":" + std::to_string(remote.port());
  }

  ~ChannelSession() override {
    if (registered_) core_.registry->Remove(peer_.sensor_id, this);
  }

  void Start() {
    beast::get_lowest_layer(ws_).expires_after(kHandshakeTimeout);
    ws_.next_layer().async_handshake(
        asio::ssl::stream_base::server,
        [self = shared_from_this()](beast::error_code error) { self->OnTlsHandshake(error); });
  }

  void Disconnect(std::string reason) override {
    asio::post(ws_.get_executor(),
               [self = shared_from_this(), reason = std::move(reason)] { self->Close(reason); });
  }

  void SendCommand(std::string command) override {
    asio::post(ws_.get_executor(), [self = shared_from_this(), command = std::move(command)] {
      self->Command(command);
    });
  }

  void OfferDesiredState(std::int64_t version, std::string config) override {
    asio::post(ws_.get_executor(),
               [self = shared_from_this(), version, config = std::move(config)]() mutable {
                 self->Offer(version, std::move(config));
               });
  }

 private:
  // --- admission -------------------------------------------------------

  void OnTlsHandshake(beast::error_code error) {
    if (error) {
      // Unknown CA, revoked, expired or no certificate: the TLS layer refused it.
      spdlog::info("channel {}: TLS handshake refused: {}", remote_, error.message());
      return;
    }
    auto peer = crypto::PeerIdentityOf(ws_.next_layer());
    if (!peer.ok()) {
      spdlog::warn("channel {}: {}", remote_, peer.error().message);
      return;
    }
    peer_ = std::move(*peer);
    upgrade_.header_limit(8 * 1024);
    upgrade_.body_limit(0);
    http::async_read(ws_.next_layer(), read_buffer_, upgrade_,
                     [self = shared_from_this()](beast::error_code read_error, std::size_t) {
                       self->OnUpgradeRequest(read_error);
                     });
  }

  void OnUpgradeRequest(beast::error_code error) {
    if (error) {
      spdlog::info("channel {} ({}): no upgrade request: {}", remote_, peer_.sensor_id,
                   error.message());
      return;
    }
    const auto& request = upgrade_.get();
    if (request.target().starts_with(kDataKeyPath)) return ServeDataKey();
    if (request.target() != kChannelPath) {
      return RefuseUpgrade(Problem{404, "not-found", "the channel is at /v1/channel"});
    }
    if (!websocket::is_upgrade(request)) {
      return RefuseUpgrade(Problem{426, "upgrade-required", "/v1/channel speaks WebSocket only"});
    }
    asio::post(blocking_, [self = shared_from_this()] {
      auto refusal = std::make_shared<std::string>(self->Admit());
      asio::post(self->ws_.get_executor(), [self, refusal] {
        if (!refusal->empty()) return self->RefuseUpgrade(Problem{403, "forbidden", *refusal});
        self->Accept();
      });
    });
  }

  // The data key (GET /v1/data-key) or a re-key's confirmation (POST
  // /v1/data-key/confirm?version=N), for this certificate's sensor only.
  void ServeDataKey() {
    asio::post(blocking_, [self = shared_from_this()] {
      auto reply = std::make_shared<std::pair<int, std::string>>(self->DataKeyReply());
      asio::post(self->ws_.get_executor(), [self, reply] {
        if (reply->first != 200) {
          return self->RefuseUpgrade(Problem{reply->first, "data-key", reply->second});
        }
        auto response = std::make_shared<http::response<http::string_body>>(
            http::status::ok, self->upgrade_.get().version());
        response->set(http::field::content_type, "application/json");
        response->set(http::field::cache_control, "no-store");
        response->body() = std::move(reply->second);
        response->keep_alive(false);
        response->prepare_payload();
        beast::get_lowest_layer(self->ws_).expires_after(kHandshakeTimeout);
        http::async_write(self->ws_.next_layer(), *response,
                          [self, response](beast::error_code, std::size_t) {
                            OPENSSL_cleanse(response->body().data(), response->body().size());
                            self->CloseSocket();
                          });
      });
    });
  }

  // On the blocking pool: status and body (or the refusal's detail).
  std::pair<int, std::string> DataKeyReply() {
    if (auto refusal = Admit(); !refusal.empty()) return {403, refusal};
    if (core_.keys == nullptr) return {503, "this fleet hands out no data keys"};
    const auto& request = upgrade_.get();
    std::string_view target(request.target().data(), request.target().size());
    if (request.method() == http::verb::get && target == kDataKeyPath) {
      auto keys = core_.keys->KeysFor(peer_.sensor_id);
      if (!keys.ok()) return {403, keys.error().message};
      nlohmann::json body = {{"key", Base64(keys->current)}, {"version", keys->version}};
      if (keys->pending) {
        body["pending"] = {{"key", Base64(*keys->pending)}, {"version", keys->pending_version}};
      }
      spdlog::info("channel {}: data key version {} handed to sensor {}", remote_, keys->version,
                   peer_.sensor_id);
      std::string text = body.dump();
      OPENSSL_cleanse(body["key"].get_ref<std::string&>().data(),
                      body["key"].get_ref<std::string&>().size());
      return {200, std::move(text)};
    }
    if (request.method() == http::verb::post && target.starts_with(kDataKeyConfirmPath)) {
      std::int64_t version = 0;
      try {
        version = std::stoll(std::string(target.substr(std::strlen(kDataKeyConfirmPath))));
      } catch (const std::exception&) {
        return {400, "version must be a number"};
      }
      auto confirmed = core_.keys->ConfirmRekey(peer_.sensor_id, version);
      if (!confirmed.ok()) return {500, confirmed.error().message};
      if (!*confirmed)
        return {409, "data key version " + std::to_string(version) + " is not pending"};
      spdlog::info("channel {}: sensor {} re-keyed to data key version {}", remote_,
                   peer_.sensor_id, version);
      return {200, nlohmann::json({{"version", version}}).dump()};
    }
    return {404, "no such data key request"};
  }

  // On the blocking pool. The reason the sensor is refused, or "".
  std::string Admit() {
    auto sensor = core_.store->GetSensor(peer_.sensor_id);
    if (!sensor.ok()) {
      spdlog::error("channel {}: {}", remote_, sensor.error().message);
      return "the fleet cannot check this sensor now";
    }
    if (!sensor->has_value()) return "sensor " + peer_.sensor_id + " is not enrolled in this fleet";
    if ((*sensor)->revoked_at) return "sensor " + peer_.sensor_id + " is revoked";
    if ((*sensor)->certificate_serial != peer_.serial_hex) {
      return "this certificate is not the one issued to sensor " + peer_.sensor_id;
    }
    return "";
  }

  void RefuseUpgrade(const Problem& problem) {
    spdlog::warn("channel {} ({}): refused: {}", remote_, peer_.sensor_id, problem.detail);
    auto response = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(problem.status), upgrade_.get().version());
    response->set(http::field::content_type, "application/problem+json");
    response->body() = ProblemJson(problem);
    response->keep_alive(false);
    response->prepare_payload();
    beast::get_lowest_layer(ws_).expires_after(kHandshakeTimeout);
    http::async_write(ws_.next_layer(), *response,
                      [self = shared_from_this(), response](beast::error_code, std::size_t) {
                        self->CloseSocket();
                      });
  }

  void Accept() {
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout timeouts;
    timeouts.handshake_timeout = kHandshakeTimeout;
    // Three missed heartbeats (the pings Beast sends then get no answer).
    timeouts.idle_timeout = std::chrono::seconds(std::max(15, 3 * core_.heartbeat_seconds));
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.read_message_max(kMaxChannelMessageBytes);
    ws_.async_accept(upgrade_.get(), [self = shared_from_this()](beast::error_code error) {
      self->OnAccept(error);
    });
  }

  void OnAccept(beast::error_code error) {
    if (error) {
      spdlog::info("channel {} ({}): WebSocket accept failed: {}", remote_, peer_.sensor_id,
                   error.message());
      return;
    }
    accepted_ = true;
    core_.registry->Add(peer_.sensor_id, shared_from_this(), remote_);
    registered_ = true;
    spdlog::info("channel {}: sensor {} (tenant {}) connected", remote_, peer_.sensor_id,
                 peer_.tenant);
    // A revocation that finished between admission and registration found
    // no link to cut; the CRL it published is already in place.
    if (core_.revocations->IsRevoked(peer_.serial_hex)) return Close("sensor certificate revoked");
    Read();
  }

  // --- reading ---------------------------------------------------------

  void Read() {
    if (closing_) return;
    ws_.async_read(read_buffer_, [self = shared_from_this()](beast::error_code error, std::size_t) {
      self->OnRead(error);
    });
  }

  void OnRead(beast::error_code error) {
    if (error) return Ended(error);
    if (closing_) return;
    if (!ws_.got_text()) return Fail("binary messages are not part of the protocol");
    std::string text = beast::buffers_to_string(read_buffer_.data());
    read_buffer_.consume(read_buffer_.size());
    auto message = ParseSensorMessage(text);
    if (!message.ok()) return Fail(message.error().message);
    if (!welcomed_ && !std::holds_alternative<HelloMessage>(*message)) {
      return Fail("the first message must be hello");
    }
    std::visit([this](auto& parsed) { Handle(parsed); }, *message);
    Read();
  }

  void Ended(beast::error_code error) {
    if (!closing_) {
      spdlog::info("channel {}: sensor {} disconnected: {}", remote_, peer_.sensor_id,
                   error.message());
    }
    closing_ = true;
    close_timer_.cancel();
    if (registered_) {
      core_.registry->Remove(peer_.sensor_id, this);
      registered_ = false;
    }
  }

  void Handle(HelloMessage& hello) {
    if (welcomed_) return Fail("hello was already sent on this connection");
    if (hello.version != kChannelProtocolVersion) {
      return Fail("protocol version " + std::to_string(hello.version) + " is not supported (1)");
    }
    if (hello.sensor_id != peer_.sensor_id) {
      return Fail("hello names sensor " + hello.sensor_id + " but the certificate names " +
                  peer_.sensor_id);
    }
    welcomed_ = true;
    known_state_version_ = hello.state_version;
    Send(WelcomeMessage(peer_.sensor_id, core_.heartbeat_seconds));
    if (pending_offer_) {
      auto offer = std::move(*pending_offer_);
      pending_offer_.reset();
      Offer(offer.first, std::move(offer.second));
    }
    for (const auto& command : std::exchange(pending_commands_, {})) Command(command);
    asio::post(blocking_, [self = shared_from_this()] {
      auto state = self->core_.store->GetDesiredState(self->peer_.sensor_id);
      if (!state.ok()) {
        spdlog::error("channel {}: {}", self->peer_.sensor_id, state.error().message);
        return;
      }
      if (state->version == 0) return;
      self->OfferDesiredState(state->version, DesiredConfigOf(*state));
    });
    // A re-key ordered while the sensor was away is ordered again now.
    if (core_.keys != nullptr) {
      asio::post(blocking_, [self = shared_from_this()] {
        auto versions = self->core_.store->DataKeyVersionsOf(self->peer_.sensor_id);
        if (!versions.ok()) {
          spdlog::error("channel {}: {}", self->peer_.sensor_id, versions.error().message);
        } else if (versions->has_value() && (*versions)->pending_wrapped) {
          self->SendCommand("rekey");
        }
      });
    }
  }

  void Handle(HeartbeatMessage& heartbeat) {
    core_.registry->NoteHeartbeat(peer_.sensor_id, this, heartbeat.health_json);
    auto now = std::chrono::steady_clock::now();
    if (last_persisted_ && now - *last_persisted_ < kHeartbeatPersistInterval) return;
    last_persisted_ = now;
    asio::post(blocking_, [self = shared_from_this(), health = std::move(heartbeat.health_json)] {
      auto recorded = self->core_.store->RecordHeartbeat(self->peer_.sensor_id, health);
      if (!recorded.ok()) spdlog::warn("channel: {}", recorded.error().message);
    });
  }

  // Batches go to the group-commit writer as they arrive; it stores and
  // reports them in order, so acks leave in the order batches came.
  void Handle(EventsMessage& events) {
    if (++batches_in_writer_ > kMaxQueuedBatches) {
      return Fail("more than 8 event batches are waiting for their ack");
    }
    std::vector<IncomingEvent> incoming;
    incoming.reserve(events.events.size());
    for (ChannelEvent& event : events.events) {
      incoming.push_back(IncomingEvent{event.seq, std::move(event.event)});
    }
    core_.events->Submit(
        peer_.sensor_id, std::move(incoming),
        [self = shared_from_this(), batch = events.batch](const Result<StoreEventsResult>& stored) {
          auto outcome = std::make_shared<Result<StoreEventsResult>>(stored);
          asio::post(self->ws_.get_executor(),
                     [self, batch, outcome] { self->OnStored(batch, *outcome); });
        });
  }

  void OnStored(std::uint64_t batch, const Result<StoreEventsResult>& stored) {
    --batches_in_writer_;
    if (closing_) return;
    if (!stored.ok()) {
      spdlog::error("channel: {}", stored.error().message);
      return Fail("the fleet could not store batch " + std::to_string(batch) +
                  "; send it again later");
    }
    if (stored->duplicates > 0) {
      spdlog::debug("channel: sensor {} batch {}: {} duplicate event(s)", peer_.sensor_id, batch,
                    stored->duplicates);
    }
    Send(AckMessage(batch, stored->acknowledge_seq));
  }

  void Handle(StateResultMessage& result) {
    spdlog::info("channel: sensor {} {} desired state version {}{}{}", peer_.sensor_id,
                 result.ok ? "applied" : "refused", result.version, result.ok ? "" : ": ",
                 result.error);
    nlohmann::json outcome = {{"ok", result.ok}, {"stream", result.stream}};
    if (!result.error.empty()) outcome["error"] = result.error;
    asio::post(blocking_,
               [self = shared_from_this(), version = result.version,
                text = outcome.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)] {
                 auto recorded =
                     self->core_.store->RecordAppliedState(self->peer_.sensor_id, version, text);
                 if (!recorded.ok()) spdlog::warn("channel: {}", recorded.error().message);
               });
  }

  void Handle(CommandResultMessage& result) {
    spdlog::info("channel: sensor {} command stream {} {}: {}", peer_.sensor_id, result.stream,
                 result.ok ? "succeeded" : "failed", result.output_json.substr(0, 512));
  }

  // --- desired state -------------------------------------------------------

  void Offer(std::int64_t version, std::string config) {
    if (closing_ || version <= known_state_version_) return;
    if (!welcomed_) {
      if (!pending_offer_ || pending_offer_->first < version) {
        pending_offer_.emplace(version, std::move(config));
      }
      return;
    }
    known_state_version_ = version;
    spdlog::info("channel: sending desired state version {} to sensor {}", version,
                 peer_.sensor_id);
    Send(DesiredStateMessage(next_stream_++, version, config));
  }

  void Command(const std::string& command) {
    if (closing_) return;
    if (!welcomed_) return pending_commands_.push_back(command);
    spdlog::info("channel: sending command {} to sensor {}", command, peer_.sensor_id);
    Send(CommandMessage(next_stream_++, command));
  }

  // --- writing and closing ---------------------------------------------

  void Send(std::string message) {
    if (closing_) return;
    outbox_.push_back(std::move(message));
    if (!writing_) WriteNext();
  }

  void WriteNext() {
    writing_ = true;
    ws_.text(true);
    ws_.async_write(asio::buffer(outbox_.front()),
                    [self = shared_from_this()](beast::error_code error, std::size_t) {
                      self->OnWrite(error);
                    });
  }

  void OnWrite(beast::error_code error) {
    writing_ = false;
    outbox_.pop_front();
    if (error) return CloseSocket();
    if (!outbox_.empty()) return WriteNext();
    if (closing_ && accepted_) {
      // The error message is out; now the WebSocket close handshake.
      ws_.async_close(websocket::close_reason(websocket::close_code::policy_error),
                      [self = shared_from_this()](beast::error_code) { self->CloseSocket(); });
    }
  }

  void Fail(const std::string& detail) {
    spdlog::warn("channel {}: sensor {}: {}", remote_, peer_.sensor_id, detail);
    Close(detail);
  }

  void Close(const std::string& reason) {
    if (closing_ || !accepted_) return;
    spdlog::info("channel {}: closing sensor {}: {}", remote_, peer_.sensor_id, reason);
    // Whatever else is queued no longer matters; the write in flight must finish.
    if (writing_) {
      outbox_.erase(outbox_.begin() + 1, outbox_.end());
    } else {
      outbox_.clear();
    }
    outbox_.push_back(ErrorMessage(reason));
    closing_ = true;
    if (registered_) {
      core_.registry->Remove(peer_.sensor_id, this);
      registered_ = false;
    }
    close_timer_.expires_after(kCloseGrace);
    close_timer_.async_wait([self = shared_from_this()](beast::error_code error) {
      if (!error) self->CloseSocket();
    });
    if (!writing_) WriteNext();
  }

  void CloseSocket() {
    close_timer_.cancel();
    beast::error_code ignored;
    auto& socket = beast::get_lowest_layer(ws_).socket();
    if (!socket.is_open()) return;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws_;
  FleetCore& core_;
  asio::thread_pool& blocking_;
  asio::steady_timer close_timer_;
  std::string remote_;
  crypto::PeerIdentity peer_;
  beast::flat_buffer read_buffer_;
  http::request_parser<http::empty_body> upgrade_;
  std::deque<std::string> outbox_;
  std::optional<std::pair<std::int64_t, std::string>> pending_offer_;
  std::vector<std::string> pending_commands_;  // sent after the welcome
  std::optional<std::chrono::steady_clock::time_point> last_persisted_;
  std::int64_t known_state_version_ = 0;
  std::uint64_t next_stream_ = 1;
  std::size_t batches_in_writer_ = 0;
  bool accepted_ = false;
  bool registered_ = false;
  bool welcomed_ = false;
  bool writing_ = false;
  bool closing_ = false;
};

}  // namespace

void StartChannelSession(tcp::socket socket, asio::ssl::context& context, FleetCore& core,
                         asio::thread_pool& blocking) {
  std::make_shared<ChannelSession>(std::move(socket), context, core, blocking)->Start();
}

}  // namespace custos::fleet
