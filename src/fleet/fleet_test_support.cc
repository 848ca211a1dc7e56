#include "fleet/fleet_test_support.h"

#include <gtest/gtest.h>

#include <boost/beast/websocket/ssl.hpp>

#include "common/files.h"
#include "crypto/csr.h"
#include "crypto/tls.h"
#include "fleet/fleet_layout.h"

namespace custos::fleet::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using nlohmann::json;

TestFleet::TestFleet(FleetServerOptions options) {
  FleetInitOptions init;
  init.dir = dir_.path() / "fleet";
  init.addresses = {"fleet.test"};
  init.name = "Test Fleet";
  admin_token_ = Must(InitFleet(init));
  FleetPaths paths(init.dir);
  root_pem_ = Must(ReadFile(paths.root_certificate));
  options.dir = init.dir;
  options.api_address = "127.0.0.1:0";
  options.channel_address = "127.0.0.1:0";
  server_ = Must(FleetServer::Open(options));
  Must(server_->Start());
}

TestFleet::~TestFleet() {
  if (server_) server_->Stop();
}

Reply TestFleet::Call(const std::string& method, const std::string& target, const std::string& body,
                      std::optional<std::string> token, const std::string& content_type) {
  HttpsClientOptions options;
  options.server = HostPort{"127.0.0.1", api_port()};
  options.root_pem = root_pem_;
  options.bearer_token = token ? *token : admin_token_;
  options.timeout = std::chrono::seconds(20);
  auto reply = HttpsCall(options, method, target, body, content_type);
  if (!reply.ok()) {
    ADD_FAILURE() << method << " " << target << ": " << reply.error().message;
    return {};
  }
  Reply result{reply->status, reply->content_type, json::parse(reply->body, nullptr, false),
               reply->body};
  if (result.body.is_discarded()) result.body = nullptr;
  return result;
}

std::string TestFleet::CreateToken(const std::string& tenant) {
  Reply reply = Call("POST", "/v1/tokens", json{{"tenant", tenant}}.dump());
  EXPECT_EQ(reply.status, 201) << reply.text;
  return reply.body.value("token", "");
}

std::string EnrollBody(const std::string& token, const crypto::KeyPair& key,
                       const std::string& name) {
  crypto::Csr csr = Must(crypto::Csr::Create(key, name));
  return json{{"token", token}, {"csr", csr.Pem()}, {"name", name}}.dump();
}

SensorIdentity TestFleet::Enroll(const std::string& tenant, const std::string& name) {
  crypto::KeyPair key = Must(crypto::KeyPair::Generate());
  Reply reply = Call("POST", "/v1/enroll", EnrollBody(CreateToken(tenant), key, name), "");
  EXPECT_EQ(reply.status, 200) << reply.text;
  if (reply.status != 200) throw std::runtime_error("enrollment refused: " + reply.text);
  return SensorIdentity{reply.body["sensor_id"],   reply.body["tenant"], std::move(key),
                        reply.body["certificate"], reply.body["chain"],  reply.body["root"]};
}

ChannelClient::ChannelClient(std::uint16_t port, const SensorIdentity& identity)
    : port_(port), sensor_id_(identity.sensor_id) {
  crypto::ClientTlsOptions options{identity.root_pem, identity.certificate_pem, identity.chain_pem,
                                   "127.0.0.1"};
  context_.emplace(Must(crypto::MakeClientContext(options, identity.key)));
  ws_ = std::make_unique<websocket::stream<beast::ssl_stream<beast::tcp_stream>>>(io_, *context_);
}

ChannelClient::~ChannelClient() {
  beast::error_code ignored;
  beast::get_lowest_layer(*ws_).socket().close(ignored);
}

template <typename Start>
beast::error_code ChannelClient::RunWithDeadline(std::chrono::milliseconds timeout, Start start) {
  std::optional<beast::error_code> outcome;
  start([&outcome](beast::error_code error) { outcome = error; });
  io_.restart();
  io_.run_for(timeout);
  if (outcome) return *outcome;
  // Timed out: cancel, let the handler run, and report the timeout.
  beast::error_code ignored;
  beast::get_lowest_layer(*ws_).socket().cancel(ignored);
  io_.restart();
  io_.run_for(std::chrono::seconds(5));
  return beast::error::timeout;
}

Status ChannelClient::Connect(const std::string& path, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now());
  };
  asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port_);
  auto error = RunWithDeadline(left(), [&](auto done) {
    beast::get_lowest_layer(*ws_).socket().async_connect(endpoint, done);
  });
  if (error) return Error{"connect: " + error.message()};
  error = RunWithDeadline(left(), [&](auto done) {
    ws_->next_layer().async_handshake(asio::ssl::stream_base::client, done);
  });
  if (error) return Error{"TLS handshake: " + error.message()};
  std::string host = "127.0.0.1:" + std::to_string(port_);
  websocket::response_type response;
  error =
      RunWithDeadline(left(), [&](auto done) { ws_->async_handshake(response, host, path, done); });
  if (error) {
    return Error{"WebSocket handshake: " + error.message() + " (HTTP " +
                 std::to_string(response.result_int()) + ")"};
  }
  return {};
}

Status ChannelClient::SendText(const std::string& text) {
  ws_->text(true);
  auto error = RunWithDeadline(std::chrono::seconds(10), [&](auto done) {
    ws_->async_write(asio::buffer(text),
                     [done](beast::error_code code, std::size_t) mutable { done(code); });
  });
  if (error) return Error{"send: " + error.message()};
  return {};
}

Status ChannelClient::Send(const json& message) { return SendText(message.dump()); }

Result<json> ChannelClient::Receive(std::chrono::milliseconds timeout) {
  if (closed_) return Error{"closed"};
  auto error = RunWithDeadline(timeout, [&](auto done) {
    ws_->async_read(buffer_, [done](beast::error_code code, std::size_t) mutable { done(code); });
  });
  if (error) {
    if (error != beast::error::timeout) closed_ = true;
    return Error{error.message()};
  }
  std::string text = beast::buffers_to_string(buffer_.data());
  buffer_.consume(buffer_.size());
  json message = json::parse(text, nullptr, false);
  if (message.is_discarded()) return Error{"not JSON: " + text};
  return message;
}

Result<json> ChannelClient::ReceiveType(const std::string& type,
                                        std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Error{"no " + type + " message in time"};
    auto message = Receive(left);
    if (!message.ok()) return message.error();
    if (message->value("type", "") == type) return message;
    if (message->value("type", "") == "error") {
      return Error{"error message: " + message->value("detail", "")};
    }
  }
}

Result<json> ChannelClient::Hello(std::int64_t state_version) {
  CUSTOS_TRY(Send({{"type", "hello"},
                   {"version", 1},
                   {"sensor_id", sensor_id_},
                   {"state_version", state_version},
                   {"spool", 1}}));
  return ReceiveType("welcome");
}

json EventsBatch(std::uint64_t batch, std::uint64_t first, std::uint64_t last,
                 const std::string& type) {
  json events = json::array();
  for (std::uint64_t seq = first; seq <= last; ++seq) {
    json event = {
        {"timestamp", "2026-11-23T10:00:00.000000+0000"}, {"event_type", type}, {"n", seq}};
    events.push_back(
        {{"seq", seq}, {"topic", type}, {"instrument", "dnsmon"}, {"event", event.dump()}});
  }
  return {{"type", "events"}, {"batch", batch}, {"events", events}};
}

}  // namespace custos::fleet::testing
