// HTTPS as the CLI and sensors speak it to fleetd's API port: one request
// per TLS connection, the admin and enrollment TLS contexts, and the check
// that an enrolling sensor makes of a fleet it does not trust yet.
#pragma once

#include <openssl/ssl.h>

#include <functional>
#include <memory>
#include <string>

#include "bench/fleet/net.h"
#include "bench/fleet/support.h"
#include "common/result.h"

namespace custos::fleetbench {

struct HttpReply {
  int status = 0;
  std::string body;
};

// Checks the server after the TLS handshake, before the request is sent.
using ServerCheck = std::function<Status(SSL*)>;

// One request over a fresh TLS connection, as the CLI and sensors make them.
class HttpsExchange : public std::enable_shared_from_this<HttpsExchange> {
 public:
  using Done = std::function<void(Result<HttpReply>)>;

  HttpsExchange(asio::io_context& io, ssl::context& context) : stream_(io, context) {}

  void Run(const tcp::endpoint& server, http::request<http::string_body> request, ServerCheck check,
           Done done);

 private:
  void OnConnect(beast::error_code error);
  void OnHandshake(beast::error_code error);
  void Read();
  void Finish(Result<HttpReply> result);

  beast::ssl_stream<beast::tcp_stream> stream_;
  http::request<http::string_body> request_;
  ServerCheck check_;
  Done done_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
};

http::request<http::string_body> MakeRequest(http::verb method, const std::string& target,
                                             const std::string& host,
                                             const std::string& bearer = "",
                                             const std::string& body = "");

// The operator's view: trusts only the fleet root, checks the address.
Result<ssl::context> MakeAdminContext(const std::string& root_pem);

// An enrolling sensor trusts nothing yet: the handshake accepts any chain,
// and CheckFleetByHash decides before a byte of the request is sent.
Result<ssl::context> MakeEnrollContext();

// The chain the fleet sent must hold a self-signed root whose DER hashes to
// `ca_hash`, and the server certificate must verify against that root for
// `address`.
Status CheckFleetByHash(SSL* ssl, const std::string& ca_hash, const std::string& address);

std::string ProblemText(const HttpReply& reply);

}  // namespace custos::fleetbench
