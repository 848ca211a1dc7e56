#include "sensor/uplink.h"

#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "common/log.h"
#include "crypto/tls.h"
#include "sensor/event_spool.h"
#include "sensor/uplink_messages.h"

namespace custos::sensor {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using nlohmann::json;
using WebSocket = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

// A desired state is YAML of at most 1 MiB, escaped into JSON.
constexpr std::size_t kMaxFleetMessage = 4u << 20;
constexpr std::chrono::seconds kCloseGrace{2};
// The fleet refuses longer error texts in a state_result.
constexpr std::size_t kMaxErrorText = 16u << 10;
// Spool refusals are counted always, logged at most this often.
constexpr std::chrono::seconds kRefusalLogInterval{10};

// One connection attempt and, if it gets that far, the open channel.
struct Session {
  Session(asio::io_context& io, ssl::context& tls, std::uint64_t id)
      : ws(io, tls), generation(id) {}
  WebSocket ws;
  const std::uint64_t generation;
  beast::flat_buffer buffer;
  std::deque<std::string> outbox;  // whole messages; the front one is being written
  bool writing = false;
  bool open = false;   // the WebSocket upgrade is done
  bool ready = false;  // the fleet said welcome
};

struct InFlight {
  std::uint64_t batch = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
};

std::string Describe(const error_code& error) {
  if (error == beast::error::timeout) return "timed out";
  return error.message();
}

std::string Now() {
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::optional<std::uint64_t> Unsigned(const json& message, const char* key) {
  auto found = message.find(key);
  if (found == message.end() || !found->is_number_unsigned()) return std::nullopt;
  return found->get<std::uint64_t>();
}

std::optional<std::string> Text(const json& message, const char* key) {
  auto found = message.find(key);
  if (found == message.end() || !found->is_string()) return std::nullopt;
  return found->get<std::string>();
}

std::string Dump(const json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::uint64_t MicrosecondsNow() {
  auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count();
  return micros > 0 ? static_cast<std::uint64_t>(micros) : 1;
}

}  // namespace

class Uplink::Impl : public std::enable_shared_from_this<Uplink::Impl> {
 public:
  Impl(const UplinkOptions& options, std::shared_ptr<UplinkFeed> feed, UplinkHooks hooks,
       std::unique_ptr<EventSpool> spool, ssl::context tls)
      : options_(options),
        hooks_(std::move(hooks)),
        feed_(std::move(feed)),
        spool_(std::move(spool)),
        tls_(std::move(tls)),
        random_(std::random_device{}()) {
    backoff_ = options_.backoff_initial;
    heartbeat_ = options_.heartbeat;
    shared_.state_version = options_.state_version;
  }

  ~Impl() { Stop(); }

  void Run() {
    writer_ = std::thread([this] { WriteSpool(); });
    network_ = std::thread([this] {
      asio::post(io_, [this] { Connect(); });
      io_.run();
    });
  }

  void Stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
    }
    feed_->Close();
    if (writer_.joinable()) writer_.join();
    asio::post(io_, [this] { BeginShutdown(); });
    if (network_.joinable()) network_.join();
  }

  void SetLocalStatus(json status) {
    std::lock_guard lock(mutex_);
    shared_.local_status = std::move(status);
  }

  json StatusJson() const {
    SpoolStats spool = spool_->Stats();
    FeedCounters feed = feed_->Counters();
    std::lock_guard lock(mutex_);
    return {{"enabled", true},
            {"sensor_id", options_.identity.sensor_id},
            {"tenant", options_.identity.tenant},
            {"fleet", options_.identity.channel.ToString()},
            {"connected", shared_.connected},
            {"connected_since", shared_.connected_since},
            {"last_error", shared_.last_error},
            {"last_error_at", shared_.last_error_at},
            {"connect_attempts", shared_.attempts},
            {"connects", shared_.connects},
            {"batches_sent", shared_.batches_sent},
            {"events_sent", shared_.events_sent},
            {"acks", shared_.acks},
            {"heartbeats_sent", shared_.heartbeats_sent},
            {"heartbeat_seconds", shared_.heartbeat_seconds},
            {"state_version", shared_.state_version},
            {"spool", SpoolJson(spool, feed.dropped_full)}};
  }

 private:
  struct Shared {
    bool connected = false;
    std::string connected_since;
    std::string last_error;
    std::string last_error_at;
    std::uint64_t attempts = 0;
    std::uint64_t connects = 0;
    std::uint64_t batches_sent = 0;
    std::uint64_t events_sent = 0;
    std::uint64_t acks = 0;
    std::uint64_t heartbeats_sent = 0;
    std::uint64_t heartbeat_seconds = 0;
    std::uint64_t state_version = 0;
    json local_status;
  };

  // --- spool writer thread ---

  void WriteSpool() {
    // No sentinel like time_point::min(): `now - min()` overflows.
    std::optional<std::chrono::steady_clock::time_point> last_logged;
    while (auto events = feed_->Take()) {
      bool appended = false;
      for (const FeedEvent& event : *events) {
        auto seq = spool_->Append(EncodeSpoolRecord(event.topic, event.instrument, event.payload));
        if (seq) {
          appended = true;
          continue;
        }
        // The spool counts the refusal (dropped_full, rejected_too_large).
        auto now = std::chrono::steady_clock::now();
        if (!last_logged || now - *last_logged >= kRefusalLogInterval) {
          last_logged = now;
          spdlog::error("uplink: event of {} on {} not kept: {}", event.instrument, event.topic,
                        seq.error().message);
        }
      }
      if (!appended) continue;
      if (auto flushed = spool_->Flush(); !flushed) {
        spdlog::error("uplink: {}", flushed.error().message);
        RecordError("spool: " + flushed.error().message);
        continue;
      }
      asio::post(io_, [this] { Pump(); });
    }
  }

  // --- network thread ---

  const FleetEndpoint& Fleet() const { return options_.identity.channel; }

  void Connect() {
    if (stopping_) return;
    auto session = std::make_shared<Session>(io_, tls_, ++generation_);
    session_ = session;
    {
      std::lock_guard lock(mutex_);
      ++shared_.attempts;
    }
    resolver_.async_resolve(
        Fleet().host, std::to_string(Fleet().port),
        [this, session](error_code error, tcp::resolver::results_type addresses) {
          if (error)
            return Fail(session, "cannot resolve " + Fleet().host + ": " + Describe(error));
          if (session != session_) return;
          auto& layer = beast::get_lowest_layer(session->ws);
          layer.expires_after(options_.connect_timeout);
          layer.async_connect(addresses, [this, session](error_code connected, const auto&) {
            if (connected) {
              return Fail(session, "cannot reach the fleet at " + Fleet().ToString() + ": " +
                                       Describe(connected));
            }
            Handshake(session);
          });
        });
  }

  void Handshake(const std::shared_ptr<Session>& session) {
    if (session != session_) return;
    if (auto named = crypto::SetServerName(session->ws.next_layer().native_handle(), Fleet().host);
        !named) {
      return Fail(session, named.error().message);
    }
    beast::get_lowest_layer(session->ws).expires_after(options_.connect_timeout);
    session->ws.next_layer().async_handshake(
        ssl::stream_base::client, [this, session](error_code error) {
          if (error) {
            std::string why = Describe(error);
            long verified = SSL_get_verify_result(session->ws.next_layer().native_handle());
            if (verified != X509_V_OK) {
              why += ": ";
              why += X509_verify_cert_error_string(verified);
            }
            return Fail(session, "TLS handshake with the fleet at " + Fleet().ToString() +
                                     " failed: " + why);
          }
          Upgrade(session);
        });
  }

  void Upgrade(const std::shared_ptr<Session>& session) {
    if (session != session_) return;
    beast::get_lowest_layer(session->ws).expires_never();
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = options_.connect_timeout;
    timeouts.idle_timeout = options_.idle_timeout;
    timeouts.keep_alive_pings = true;
    session->ws.set_option(timeouts);
    session->ws.set_option(websocket::stream_base::decorator([](websocket::request_type& request) {
      request.set(beast::http::field::user_agent, "custos-sensord");
    }));
    session->ws.read_message_max(kMaxFleetMessage);
    session->ws.async_handshake(
        Fleet().ToString(), "/v1/channel", [this, session](error_code error) {
          if (error) {
            return Fail(session, "WebSocket upgrade at " + Fleet().ToString() +
                                     "/v1/channel failed: " + Describe(error));
          }
          if (session != session_) return;
          session->open = true;
          Send(session, Hello());
          hello_timer_.expires_after(options_.connect_timeout);
          hello_timer_.async_wait([this, session](error_code waited) {
            if (!waited && !session->ready) Fail(session, "the fleet did not answer hello in time");
          });
          Read(session);
        });
  }

  std::string Hello() const {
    std::uint64_t state_version = 0;
    {
      std::lock_guard lock(mutex_);
      state_version = shared_.state_version;
    }
    return Dump({{"type", "hello"},
                 {"version", 1},
                 {"sensor_id", options_.identity.sensor_id},
                 {"state_version", state_version},
                 {"spool", spool_->Stats().acked_seq + 1}});
  }

  void Fail(const std::shared_ptr<Session>& session, const std::string& why) {
    if (session != session_) return;
    session_.reset();
    in_flight_.clear();
    hello_timer_.cancel();
    heartbeat_timer_.cancel();
    beast::get_lowest_layer(session->ws).close();
    RecordError(why);
    if (stopping_) return;
    auto delay = NextBackoff();
    spdlog::warn("uplink: {}; next attempt in {} ms", why, delay.count());
    reconnect_timer_.expires_after(delay);
    reconnect_timer_.async_wait([this](error_code error) {
      if (!error) Connect();
    });
  }

  // 0.5 s doubling to 30 s (by default), each wait varied by +-20% so that
  // sensors cut off together do not come back in step.
  std::chrono::milliseconds NextBackoff() {
    auto base = backoff_;
    backoff_ = std::min(backoff_ * 2, options_.backoff_max);
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    return std::chrono::milliseconds(
        static_cast<std::int64_t>(static_cast<double>(base.count()) * jitter(random_)));
  }

  void RecordError(const std::string& why) {
    std::lock_guard lock(mutex_);
    shared_.connected = false;
    shared_.last_error = why;
    shared_.last_error_at = Now();
  }

  void Read(const std::shared_ptr<Session>& session) {
    session->ws.async_read(session->buffer, [this, session](error_code error, std::size_t) {
      if (error) {
        std::string why = error == websocket::error::closed
                              ? "the fleet closed the channel: " +
                                    std::string(session->ws.reason().reason.c_str())
                              : "reading from the fleet failed: " + Describe(error);
        return Fail(session, why);
      }
      std::string text = beast::buffers_to_string(session->buffer.data());
      session->buffer.consume(session->buffer.size());
      if (session != session_) return;
      if (auto handled = Handle(session, text); !handled)
        return Fail(session, handled.error().message);
      if (session == session_) Read(session);
    });
  }

  Status Handle(const std::shared_ptr<Session>& session, const std::string& text) {
    json message = json::parse(text, nullptr, false);
    auto type = message.is_object() ? Text(message, "type") : std::nullopt;
    if (!type) return Error{"the fleet sent a message that is not a JSON object with a type"};
    if (*type == "error") {
      return Error{"the fleet reported an error: " + Text(message, "detail").value_or("")};
    }
    if (*type == "welcome") return OnWelcome(session, message);
    if (!session->ready) return Error{"the fleet sent '" + *type + "' before welcome"};
    if (*type == "ack") return OnAck(message);
    if (*type == "desired_state") {
      OnDesiredState(session, message);
    } else if (*type == "command") {
      OnCommand(session, message);
    } else {
      spdlog::debug("uplink: ignoring a '{}' message from the fleet", *type);
    }
    return {};
  }

  Status OnWelcome(const std::shared_ptr<Session>& session, const json& message) {
    if (session->ready) return Error{"the fleet said welcome twice"};
    auto sensor_id = Text(message, "sensor_id");
    if (sensor_id && *sensor_id != options_.identity.sensor_id) {
      return Error{"the fleet welcomed sensor '" + *sensor_id + "', but this is '" +
                   options_.identity.sensor_id + "'"};
    }
    if (auto seconds = Unsigned(message, "heartbeat_seconds"); seconds && *seconds > 0) {
      heartbeat_ = std::chrono::seconds(std::min<std::uint64_t>(*seconds, 3600));
    }
    session->ready = true;
    hello_timer_.cancel();
    backoff_ = options_.backoff_initial;
    // Whatever was in flight on an earlier connection goes again.
    in_flight_.clear();
    next_send_seq_ = spool_->Stats().acked_seq + 1;
    last_sent_seq_ = next_send_seq_ - 1;
    {
      std::lock_guard lock(mutex_);
      shared_.connected = true;
      shared_.connected_since = Now();
      shared_.heartbeat_seconds =
          std::chrono::duration_cast<std::chrono::seconds>(heartbeat_).count();
      ++shared_.connects;
    }
    spdlog::info("uplink: connected to the fleet at {} as {}, sending from seq {}",
                 Fleet().ToString(), options_.identity.sensor_id, next_send_seq_);
    SendHeartbeat(session->generation);
    Pump();
    return {};
  }

  Status OnAck(const json& message) {
    auto up_to = Unsigned(message, "up_to_seq");
    if (!up_to) return Error{"the fleet sent an ack without up_to_seq"};
    if (*up_to > last_sent_seq_) {
      return Error{"the fleet acknowledged seq " + std::to_string(*up_to) +
                   ", beyond the last one sent (" + std::to_string(last_sent_seq_) + ")"};
    }
    if (auto acknowledged = spool_->Acknowledge(*up_to); !acknowledged) {
      return acknowledged.error();
    }
    while (!in_flight_.empty() && in_flight_.front().last_seq <= *up_to) in_flight_.pop_front();
    {
      std::lock_guard lock(mutex_);
      ++shared_.acks;
    }
    Pump();
    return {};
  }

  void OnDesiredState(const std::shared_ptr<Session>& session, const json& message) {
    json stream = message.contains("stream") ? message["stream"] : json();
    auto version = Unsigned(message, "version");
    auto config = Text(message, "config");
    auto answer = [this, generation = session->generation, stream](std::uint64_t number,
                                                                   const std::string& error) {
      json result = {
          {"type", "state_result"}, {"stream", stream}, {"version", number}, {"ok", error.empty()}};
      if (!error.empty()) result["error"] = error.substr(0, kMaxErrorText);
      SendOn(generation, Dump(result));
    };
    if (!version || !config) {
      return answer(version.value_or(0), "desired_state needs a version and a config text");
    }
    if (!hooks_.post || !hooks_.apply_state) {
      return answer(*version, "this sensor does not take desired states");
    }
    spdlog::info("uplink: the fleet sends desired state version {}", *version);
    std::weak_ptr<Impl> weak = weak_from_this();
    hooks_.post([weak, answer, number = *version, text = *config] {
      auto self = weak.lock();
      if (!self) return;
      Status applied = self->hooks_.apply_state(number, text);
      std::string error = applied ? "" : applied.error().message;
      asio::post(self->io_, [raw = self.get(), answer, number, error] {
        if (error.empty()) {
          std::lock_guard lock(raw->mutex_);
          raw->shared_.state_version = number;
        }
        answer(number, error);
      });
    });
  }

  void OnCommand(const std::shared_ptr<Session>& session, const json& message) {
    json stream = message.contains("stream") ? message["stream"] : json();
    auto answer = [this, generation = session->generation, stream](const json& result) {
      SendOn(generation, Dump({{"type", "command_result"},
                               {"stream", stream},
                               {"ok", result.value("ok", false)},
                               {"output", result.contains("output") ? result["output"] : json()}}));
    };
    if (!hooks_.post || !hooks_.run_command) {
      return answer({{"ok", false}, {"output", {{"error", "this sensor takes no commands"}}}});
    }
    std::weak_ptr<Impl> weak = weak_from_this();
    hooks_.post([weak, answer, message] {
      auto self = weak.lock();
      if (!self) return;
      json result = self->hooks_.run_command(message);
      asio::post(self->io_, [answer, result] { answer(result); });
    });
  }

  // Sends on the connection `generation` if it is still the current one:
  // an answer that outlived its connection is dropped (the fleet asks again).
  void SendOn(std::uint64_t generation, std::string text) {
    if (session_ && session_->generation == generation) Send(session_, std::move(text));
  }

  void Send(const std::shared_ptr<Session>& session, std::string text) {
    if (!session || session != session_) return;
    session->outbox.push_back(std::move(text));
    if (!session->writing) WriteNext(session);
  }

  void WriteNext(const std::shared_ptr<Session>& session) {
    session->writing = true;
    session->ws.text(true);
    session->ws.async_write(
        asio::buffer(session->outbox.front()), [this, session](error_code error, std::size_t) {
          session->writing = false;
          if (error) {
            return Fail(session, "sending to the fleet failed: " + Describe(error));
          }
          session->outbox.pop_front();
          if (session == session_ && !session->outbox.empty()) {
            WriteNext(session);
          }
        });
  }

  // Sends batches while fewer than kMaxUnackedBatches are unacknowledged.
  void Pump() {
    auto session = session_;
    if (!session || !session->ready) return;
    while (in_flight_.size() < kMaxUnackedBatches) {
      auto batch = spool_->ReadBatch(next_send_seq_, kMaxBatchEvents, kBatchRecordBudget);
      if (!batch) {
        spdlog::error("uplink: {}", batch.error().message);
        RecordError("spool: " + batch.error().message);
        return;
      }
      if (batch->empty()) return;
      std::uint64_t id = next_batch_++;
      in_flight_.push_back({id, batch->front().seq, batch->back().seq});
      next_send_seq_ = batch->back().seq + 1;
      last_sent_seq_ = batch->back().seq;
      Send(session, EncodeEventsMessage(id, *batch));
      std::lock_guard lock(mutex_);
      ++shared_.batches_sent;
      shared_.events_sent += batch->size();
    }
  }

  void SendHeartbeat(std::uint64_t generation) {
    if (!session_ || session_->generation != generation) return;
    HealthInputs inputs;
    inputs.data_root = options_.data_root;
    inputs.spool = spool_->Stats();
    inputs.feed_dropped = feed_->Counters().dropped_full;
    {
      std::lock_guard lock(mutex_);
      inputs.local_status = shared_.local_status;
      inputs.uplink_counters = {{"connects", shared_.connects},
                                {"connect_attempts", shared_.attempts},
                                {"batches_sent", shared_.batches_sent},
                                {"events_sent", shared_.events_sent}};
      ++shared_.heartbeats_sent;
    }
    Send(session_, Dump({{"type", "heartbeat"}, {"health", BuildHealth(inputs)}}));
    heartbeat_timer_.expires_after(heartbeat_);
    heartbeat_timer_.async_wait([this, generation](error_code error) {
      if (!error) SendHeartbeat(generation);
    });
  }

  void BeginShutdown() {
    stopping_ = true;
    reconnect_timer_.cancel();
    heartbeat_timer_.cancel();
    hello_timer_.cancel();
    resolver_.cancel();
    auto session = session_;
    if (!session || !session->open) {
      io_.stop();
      return;
    }
    close_timer_.expires_after(kCloseGrace);
    close_timer_.async_wait([this](error_code) { io_.stop(); });
    session->ws.async_close(websocket::close_code::going_away,
                            [this, session](error_code) { io_.stop(); });
  }

  const UplinkOptions options_;
  const UplinkHooks hooks_;
  const std::shared_ptr<UplinkFeed> feed_;
  const std::unique_ptr<EventSpool> spool_;

  // Declared before everything that uses it, so it is destroyed last.
  asio::io_context io_;
  ssl::context tls_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  tcp::resolver resolver_{io_};
  asio::steady_timer reconnect_timer_{io_};
  asio::steady_timer hello_timer_{io_};
  asio::steady_timer heartbeat_timer_{io_};
  asio::steady_timer close_timer_{io_};

  // Network thread only.
  std::shared_ptr<Session> session_;
  std::uint64_t generation_ = 0;
  bool stopping_ = false;
  std::chrono::milliseconds backoff_{};
  std::chrono::milliseconds heartbeat_{};
  std::mt19937_64 random_;
  std::deque<InFlight> in_flight_;
  std::uint64_t next_send_seq_ = 0;
  std::uint64_t last_sent_seq_ = 0;
  std::uint64_t next_batch_ = 1;

  mutable std::mutex mutex_;
  Shared shared_;
  bool stopped_ = false;

  std::thread writer_;
  std::thread network_;
};

Result<std::unique_ptr<Uplink>> Uplink::Start(const UplinkOptions& options,
                                              std::shared_ptr<UplinkFeed> feed, UplinkHooks hooks) {
  if (!feed) return Error{"the uplink needs a feed"};
  if (!options.identity.key) return Error{"the uplink needs the sensor's key"};
  crypto::ClientTlsOptions tls_options{options.identity.root_pem, options.identity.certificate_pem,
                                       options.identity.chain_pem, options.identity.channel.host};
  auto tls = crypto::MakeClientContext(tls_options, *options.identity.key);
  if (!tls) return Context("uplink TLS", tls.error());

  SpoolOptions spool_options;
  spool_options.max_bytes = options.spool_max_bytes;
  spool_options.segment_bytes =
      std::clamp<std::uint64_t>(options.spool_max_bytes / 8, 64u << 10, 4u << 20);
  spool_options.max_event_bytes = kMaxRecordBytes;
  spool_options.first_seq = MicrosecondsNow();
  auto spool = EventSpool::Open(options.spool_dir, spool_options);
  if (!spool) return spool.error();

  auto impl = std::make_shared<Impl>(options, std::move(feed), std::move(hooks), std::move(*spool),
                                     std::move(*tls));
  impl->Run();
  return std::unique_ptr<Uplink>(new Uplink(std::move(impl)));
}

Uplink::~Uplink() { Stop(); }

void Uplink::Stop() { impl_->Stop(); }

void Uplink::SetLocalStatus(nlohmann::json status) { impl_->SetLocalStatus(std::move(status)); }

nlohmann::json Uplink::StatusJson() const { return impl_->StatusJson(); }

}  // namespace custos::sensor
