// Test helpers for fleetd: a real fleet folder and a running FleetServer on
// loopback (kernel-chosen ports), a real HTTPS client for its API, sensors
// enrolled through POST /v1/enroll, and a real mutual-TLS WebSocket client
// for the channel. Nothing is mocked. Not thread-safe: one test thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "crypto/key.h"
#include "crypto/test_authority.h"
#include "fleet/fleet_server.h"
#include "fleet/https_client.h"

namespace custos::fleet::testing {

using crypto::testing::Must;

struct Reply {
  int status = 0;
  std::string content_type;
  nlohmann::json body;  // null when the body is not JSON
  std::string text;
};

struct SensorIdentity {
  std::string sensor_id;
  std::string tenant;
  crypto::KeyPair key;
  std::string certificate_pem;
  std::string chain_pem;
  std::string root_pem;
};

class TestFleet {
 public:
  explicit TestFleet(FleetServerOptions options = {});
  ~TestFleet();

  FleetServer& server() { return *server_; }
  FleetStore& store() { return *server_->core().store; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::string fleet_dir() const { return (dir_.path() / "fleet").string(); }
  const std::string& admin_token() const { return admin_token_; }
  const std::string& root_pem() const { return root_pem_; }
  std::uint16_t api_port() { return server_->api_port(); }
  std::uint16_t channel_port() { return server_->channel_port(); }

  // A request to the API; `token` nullopt sends the admin token, "" none.
  Reply Call(const std::string& method, const std::string& target, const std::string& body = "",
             std::optional<std::string> token = std::nullopt,
             const std::string& content_type = "application/json");
  std::string CreateToken(const std::string& tenant = "acme");
  // A new key, a CSR and POST /v1/enroll; fails the test if refused.
  SensorIdentity Enroll(const std::string& tenant = "acme", const std::string& name = "test");

 private:
  crypto::testing::TempDir dir_;
  std::string admin_token_;
  std::string root_pem_;
  std::unique_ptr<FleetServer> server_;
};

// Builds an enrollment body for `key`.
std::string EnrollBody(const std::string& token, const crypto::KeyPair& key,
                       const std::string& name = "test");

// A sensor's side of the channel, with deadlines on every step.
class ChannelClient {
 public:
  ChannelClient(std::uint16_t port, const SensorIdentity& identity);
  ~ChannelClient();

  // TCP, TLS (client certificate) and the WebSocket upgrade at `path`.
  Status Connect(const std::string& path = "/v1/channel",
                 std::chrono::milliseconds timeout = std::chrono::seconds(10));
  Status Send(const nlohmann::json& message);
  Status SendText(const std::string& text);
  // The next message; an Error on close (its text says why) or timeout.
  Result<nlohmann::json> Receive(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Messages until one of `type` arrives (others are dropped).
  Result<nlohmann::json> ReceiveType(const std::string& type,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // hello and the welcome answer.
  Result<nlohmann::json> Hello(std::int64_t state_version = 0);
  bool closed() const { return closed_; }

 private:
  template <typename Start>
  boost::beast::error_code RunWithDeadline(std::chrono::milliseconds timeout, Start start);

  boost::asio::io_context io_;
  std::optional<boost::asio::ssl::context> context_;
  std::unique_ptr<
      boost::beast::websocket::stream<boost::beast::ssl_stream<boost::beast::tcp_stream>>>
      ws_;
  boost::beast::flat_buffer buffer_;
  std::uint16_t port_;
  std::string sensor_id_;
  bool closed_ = false;
};

// Events JSON for a batch: seqs first..last, each an EVE event of `type`.
nlohmann::json EventsBatch(std::uint64_t batch, std::uint64_t first, std::uint64_t last,
                           const std::string& type = "dns");

}  // namespace custos::fleet::testing
