// Test-only peer processes for custos_fleet_link_test, so that either end
// can be SIGKILLed and restarted:
//
//   uplink_test_peer fleet --authority DIR --store FILE [--port N]
//       [--cut-batch K] [--ack-delay-ms N] [--heartbeat-seconds N]
//       [--heartbeat-file FILE] [--send FILE]
//     plays the fleet's channel port as docs/fleet-protocol.md describes it
//     (mutual TLS 1.3 with the real server context, WebSocket /v1/channel,
//     hello/welcome, ack after the batch is in the store file and fsynced,
//     idempotent on seq). --cut-batch K stores half of the K-th batch and
//     drops the TCP connection without an ack. --send FILE sends each line
//     of FILE (a JSON message) after welcome. Prints one line per event:
//     "listening PORT", "connected ID spool N state_version V",
//     "stored D received R resent_after_ack A duplicates U", "cut",
//     "heartbeat", "message JSON", "disconnected WHY".
//
//   uplink_test_peer sensor --identity DIR --spool DIR [--prefill N]
//       [--backoff-ms N]
//     runs the real Uplink; --prefill appends N events {"id": i} (topic
//     test) to the spool and flushes them before the uplink starts, so all
//     are accepted. Prints "started"; stops cleanly on SIGTERM ("stopped").
//
//   uplink_test_peer identity --authority DIR --identity DIR --port N
//     makes a test fleet CA in the authority folder (unless one is there)
//     and writes an enrolled identity for sensor-1 whose channel is
//     127.0.0.1:N, for trying custos-sensord by hand.
// clang-format off
#include <utility>  // first: Boost 1.74's asio/awaitable.hpp uses it without including it
// clang-format on
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/files.h"
#include "common/unique_fd.h"
#include "crypto/authority.h"
#include "crypto/key_file.h"
#include "crypto/test_authority.h"
#include "crypto/tls.h"
#include "sensor/event_spool.h"
#include "sensor/uplink.h"
#include "sensor/uplink_messages.h"
#include "sensor/uplink_test_support.h"

namespace custos::sensor {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using crypto::testing::Must;
using nlohmann::json;

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

using Args = std::map<std::string, std::string>;

std::uint64_t Number(const Args& args, const std::string& key, std::uint64_t fallback) {
  auto found = args.find(key);
  return found == args.end() ? fallback : std::stoull(found->second);
}

std::string Text(const Args& args, const std::string& key) {
  auto found = args.find(key);
  if (found == args.end()) throw std::runtime_error("missing " + key);
  return found->second;
}

// The fleet's event store, reduced to a file: one JSON line per distinct
// seq, fsynced before any ack.
class Store {
 public:
  explicit Store(const std::string& path) {
    std::error_code ignored;
    if (std::filesystem::exists(path, ignored)) {
      for (const auto& line : testing::ReadStore(path)) seqs_.insert(line.seq);
    }
    fd_.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!fd_.valid()) throw std::runtime_error("cannot open " + path);
  }

  void Add(const json& events, std::size_t count) {
    std::string text;
    for (std::size_t i = 0; i < count; ++i) {
      const json& event = events[i];
      std::uint64_t seq = event.at("seq").get<std::uint64_t>();
      ++received_;
      if (seq <= acked_high_) ++resent_after_ack_;
      if (!seqs_.insert(seq).second) {
        ++duplicates_;
        continue;
      }
      json line = {{"seq", seq},
                   {"topic", event.at("topic")},
                   {"instrument", event.at("instrument")},
                   {"event", event.at("event")}};
      text += line.dump() + "\n";
    }
    if (::write(fd_.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
        ::fsync(fd_.get()) != 0) {
      throw std::runtime_error("cannot write the store");
    }
  }

  void Acked(std::uint64_t seq) { acked_high_ = std::max(acked_high_, seq); }

  std::string Summary() const {
    return "stored " + std::to_string(seqs_.size()) + " received " + std::to_string(received_) +
           " resent_after_ack " + std::to_string(resent_after_ack_) + " duplicates " +
           std::to_string(duplicates_);
  }

 private:
  UniqueFd fd_;
  std::set<std::uint64_t> seqs_;
  std::uint64_t received_ = 0;
  std::uint64_t resent_after_ack_ = 0;
  std::uint64_t duplicates_ = 0;
  std::uint64_t acked_high_ = 0;  // in this process
};

using Channel = websocket::stream<ssl::stream<tcp::socket>>;

json ReadJson(Channel& channel) {
  beast::flat_buffer buffer;
  channel.read(buffer);
  return json::parse(beast::buffers_to_string(buffer.data()));
}

void WriteJson(Channel& channel, const json& message) {
  channel.text(true);
  channel.write(asio::buffer(message.dump()));
}

struct FleetSettings {
  std::uint64_t cut_batch = 0;
  std::uint64_t ack_delay_ms = 0;
  std::uint64_t heartbeat_seconds = 1;
  std::string heartbeat_file;
  std::vector<std::string> send;
};

void Serve(tcp::socket socket, ssl::context& tls, Store& store, const FleetSettings& settings,
           std::uint64_t& batches_seen) {
  Channel channel(std::move(socket), tls);
  channel.next_layer().handshake(ssl::stream_base::server);
  auto peer = crypto::PeerIdentityOf(channel.next_layer());
  if (!peer) throw std::runtime_error(peer.error().message);
  beast::flat_buffer buffer;
  http::request<http::string_body> request;
  http::read(channel.next_layer(), buffer, request);
  if (request.target() != "/v1/channel") throw std::runtime_error("wrong target");
  channel.accept(request);

  json hello = ReadJson(channel);
  if (hello.at("type") != "hello" || hello.at("version") != 1 ||
      hello.at("sensor_id") != peer->sensor_id) {
    throw std::runtime_error("bad hello: " + hello.dump());
  }
  Say("connected " + peer->sensor_id + " spool " +
      std::to_string(hello.at("spool").get<std::uint64_t>()) + " state_version " +
      std::to_string(hello.at("state_version").get<std::uint64_t>()));
  WriteJson(channel, {{"type", "welcome"},
                      {"sensor_id", peer->sensor_id},
                      {"heartbeat_seconds", settings.heartbeat_seconds}});
  for (const auto& message : settings.send) WriteJson(channel, json::parse(message));

  for (;;) {
    json message = ReadJson(channel);
    std::string type = message.at("type");
    if (type == "events") {
      const json& events = message.at("events");
      if (events.empty() || events.size() > kMaxBatchEvents) throw std::runtime_error("bad batch");
      if (++batches_seen == settings.cut_batch) {
        store.Add(events, events.size() / 2);
        Say("cut");
        beast::get_lowest_layer(channel).close();
        return;
      }
      store.Add(events, events.size());
      if (settings.ack_delay_ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(settings.ack_delay_ms));
      }
      std::uint64_t up_to = events.back().at("seq");
      WriteJson(channel, {{"type", "ack"}, {"batch", message.at("batch")}, {"up_to_seq", up_to}});
      store.Acked(up_to);
      Say(store.Summary());
    } else if (type == "heartbeat") {
      if (!settings.heartbeat_file.empty()) {
        Must(WriteFileAtomic(settings.heartbeat_file, message.dump()));
      }
      Say("heartbeat");
    } else {
      Say("message " + message.dump());
    }
  }
}

int RunFleet(const Args& args) {
  std::filesystem::path authority_dir = Text(args, "--authority");
  crypto::AuthorityPaths paths(authority_dir);
  auto authority = Must(crypto::IssuingAuthority::Load(authority_dir));
  auto revocations = Must(crypto::RevocationList::Create(
      crypto::CertificateToPem(authority.certificate()), Must(ReadFile(paths.crl))));
  crypto::ServerTlsOptions options{authority.root_pem(), Must(ReadFile(paths.server_certificate)),
                                   authority.chain_pem(), revocations};
  ssl::context tls =
      Must(crypto::MakeServerContext(options, Must(crypto::ReadPrivateKeyFile(paths.server_key))));

  FleetSettings settings;
  settings.cut_batch = Number(args, "--cut-batch", 0);
  settings.ack_delay_ms = Number(args, "--ack-delay-ms", 0);
  settings.heartbeat_seconds = Number(args, "--heartbeat-seconds", 1);
  if (args.contains("--heartbeat-file")) settings.heartbeat_file = args.at("--heartbeat-file");
  if (args.contains("--send")) {
    std::string text = Must(ReadFile(args.at("--send")));
    std::size_t start = 0;
    for (std::size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
      if (end > start) settings.send.push_back(text.substr(start, end - start));
    }
  }
  Store store(Text(args, "--store"));

  asio::io_context io;
  auto port = static_cast<unsigned short>(Number(args, "--port", 0));
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), port));
  Say("listening " + std::to_string(acceptor.local_endpoint().port()));
  std::uint64_t batches_seen = 0;
  for (;;) {
    tcp::socket socket(io);
    acceptor.accept(socket);
    try {
      Serve(std::move(socket), tls, store, settings, batches_seen);
    } catch (const boost::system::system_error& error) {
      Say("disconnected " + error.code().message());
    } catch (const std::exception& error) {
      Say(std::string("disconnected ") + error.what());
    }
  }
}

int RunSensor(const Args& args) {
  // Blocked before any thread starts, so only sigwait below takes them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  std::filesystem::path spool_dir = Text(args, "--spool");
  std::uint64_t prefill = Number(args, "--prefill", 0);
  if (prefill > 0) {
    auto spool = Must(EventSpool::Open(spool_dir));
    for (std::uint64_t i = 0; i < prefill; ++i) {
      Must(spool->Append(EncodeSpoolRecord("test", "gen", json{{"id", i}}.dump())));
    }
    Must(spool->Flush());
  }
  UplinkOptions options;
  options.identity = Must(LoadFleetIdentity(Text(args, "--identity")));
  options.spool_dir = spool_dir;
  options.data_root = spool_dir.string();
  options.backoff_initial = std::chrono::milliseconds(Number(args, "--backoff-ms", 100));
  options.backoff_max = options.backoff_initial * 4;
  auto feed = std::make_shared<UplinkFeed>();
  feed->SetTopics({"test"});
  auto uplink = Must(Uplink::Start(options, feed, UplinkHooks{}));
  Say("started");
  int signal = 0;
  sigwait(&stop, &signal);
  uplink->Stop();
  Say("stopped");
  return 0;
}

int RunIdentity(const Args& args) {
  std::filesystem::path authority_dir = Text(args, "--authority");
  if (!std::filesystem::exists(authority_dir / "chain.pem")) {
    crypto::testing::InitTestAuthority(authority_dir);
  }
  auto authority = Must(crypto::IssuingAuthority::Load(authority_dir));
  testing::WriteTestIdentity(
      Text(args, "--identity"), authority, "sensor-1",
      FleetEndpoint{"127.0.0.1", static_cast<std::uint16_t>(Number(args, "--port", 8444))});
  Say("identity written");
  return 0;
}

}  // namespace
}  // namespace custos::sensor

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: uplink_test_peer fleet|sensor --option value ...\n";
    return 2;
  }
  custos::sensor::Args args;
  for (int i = 2; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  std::string mode = argv[1];
  try {
    if (mode == "fleet") return custos::sensor::RunFleet(args);
    if (mode == "sensor") return custos::sensor::RunSensor(args);
    if (mode == "identity") return custos::sensor::RunIdentity(args);
  } catch (const std::exception& error) {
    std::cerr << "uplink_test_peer " << mode << ": " << error.what() << "\n";
    return 1;
  }
  std::cerr << "uplink_test_peer: unknown mode " << mode << "\n";
  return 2;
}
