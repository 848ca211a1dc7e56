#include "sensor/enrollment.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/files.h"
#include "crypto/csr.h"
#include "crypto/key_file.h"
#include "crypto/tls.h"
#include "crypto/verify.h"

namespace custos::sensor {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

constexpr std::size_t kMaxResponseBytes = 1 << 20;

// Runs one asynchronous step to completion. Every step is bounded by the
// tcp_stream's expiry (or is a name lookup), so run() returns.
template <typename Start>
error_code Await(asio::io_context& io, Start start) {
  error_code result;
  start([&result](error_code error, auto&&...) { result = error; });
  io.restart();
  io.run();
  return result;
}

std::string Describe(const error_code& error) {
  if (error == beast::error::timeout) return "timed out";
  return error.message();
}

// "certificate verify failed: unable to get local issuer certificate"
std::string HandshakeFailure(TlsStream& stream, const error_code& error) {
  long verified = SSL_get_verify_result(stream.native_handle());
  std::string text = Describe(error);
  if (verified != X509_V_OK) {
    text += ": ";
    text += X509_verify_cert_error_string(verified);
  }
  return text;
}

bool IsHex(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

bool IsBase64Url(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

std::string Printable(std::string_view text, std::size_t limit = 300) {
  std::string out(text.substr(0, limit));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  if (text.size() > limit) out += "...";
  return out;
}

// Connects `stream` to the endpoint and completes the TLS handshake.
Status Connect(asio::io_context& io, TlsStream& stream, const FleetEndpoint& fleet,
               std::chrono::milliseconds timeout) {
  tcp::resolver resolver(io);
  tcp::resolver::results_type addresses;
  error_code resolved = Await(io, [&](auto handler) {
    resolver.async_resolve(fleet.host, std::to_string(fleet.port),
                           [&addresses, handler](error_code error, auto results) {
                             addresses = results;
                             handler(error);
                           });
  });
  if (resolved) return Error{"cannot resolve " + fleet.host + ": " + Describe(resolved)};
  beast::get_lowest_layer(stream).expires_after(timeout);
  error_code connected = Await(
      io, [&](auto handler) { beast::get_lowest_layer(stream).async_connect(addresses, handler); });
  if (connected) {
    return Error{"cannot reach the fleet at " + fleet.ToString() + ": " + Describe(connected)};
  }
  CUSTOS_TRY(crypto::SetServerName(stream.native_handle(), fleet.host));
  beast::get_lowest_layer(stream).expires_after(timeout);
  error_code handshake =
      Await(io, [&](auto handler) { stream.async_handshake(ssl::stream_base::client, handler); });
  if (handshake) {
    return Error{"TLS handshake with the fleet at " + fleet.ToString() +
                 " failed: " + HandshakeFailure(stream, handshake)};
  }
  return {};
}

Result<ssl::context> BareClientContext() {
  ssl::context context(ssl::context::tls_client);
  if (SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_3_VERSION) != 1) {
    return crypto::OpenSslError("cannot require TLS 1.3");
  }
  return context;
}

// Step 2 of the protocol: the root the fleet sends must hash to the token's
// CA hash. This connection verifies nothing and sends nothing.
Result<std::string> DiscoverRoot(const FleetEndpoint& fleet, const std::string& ca_hash,
                                 std::chrono::milliseconds timeout) {
  auto context = BareClientContext();
  if (!context) return context.error();
  context->set_verify_mode(ssl::verify_none);
  asio::io_context io;
  TlsStream stream(io, *context);
  CUSTOS_TRY(Connect(io, stream, fleet, timeout));
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(stream.native_handle());
  std::string seen;
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    X509* certificate = sk_X509_value(chain, i);
    auto hash = CertificateSha256Hex(certificate);
    if (!hash) return hash.error();
    if (*hash == ca_hash) {
      if (X509_check_ca(certificate) == 0 ||
          X509_check_issued(certificate, certificate) != X509_V_OK) {
        return Error{"the certificate of the token's CA hash is not a self-signed CA"};
      }
      return crypto::CertificateToPem(certificate);
    }
    auto name = crypto::NameField(X509_get_subject_name(certificate), NID_commonName);
    seen += seen.empty() ? "" : ", ";
    seen += (name ? *name : std::string("?")) + " (" + hash->substr(0, 16) + "...)";
  }
  error_code ignored;
  beast::get_lowest_layer(stream).socket().close(ignored);
  return Error{"the fleet at " + fleet.ToString() +
               " sent no root certificate matching the token's CA hash " + ca_hash +
               " (it sent: " + (seen.empty() ? "nothing" : seen) +
               "); refusing to trust it, the token was not sent"};
}

// A context that trusts `root_pem` alone and checks the server's name.
Result<ssl::context> VerifyingContext(const std::string& root_pem, const std::string& host) {
  auto context = BareClientContext();
  if (!context) return context.error();
  SSL_CTX* native = context->native_handle();
  auto root = crypto::ParseCertificatePem(root_pem);
  if (!root) return root.error();
  if (X509_STORE_add_cert(SSL_CTX_get_cert_store(native), root->get()) != 1) {
    return crypto::OpenSslError("cannot trust the fleet root");
  }
  X509_VERIFY_PARAM* parameters = SSL_CTX_get0_param(native);
  X509_VERIFY_PARAM_set_flags(parameters, X509_V_FLAG_X509_STRICT);
  X509_VERIFY_PARAM_set_hostflags(parameters, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  unsigned char address[16];
  bool is_ip = ::inet_pton(AF_INET, host.c_str(), address) == 1 ||
               ::inet_pton(AF_INET6, host.c_str(), address) == 1;
  int named = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(parameters, host.c_str())
                    : X509_VERIFY_PARAM_set1_host(parameters, host.c_str(), host.size());
  if (named != 1) return crypto::OpenSslError("cannot set the expected server name");
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
  return context;
}

// The fleet's answer to POST /v1/enroll.
struct Issued {
  std::string sensor_id, tenant, certificate, chain, root, channel;
};

Result<Issued> ParseIssued(const std::string& body) {
  auto reply = nlohmann::json::parse(body, nullptr, false);
  if (!reply.is_object()) return Error{"the fleet's answer is not a JSON object"};
  Issued issued;
  for (auto [key, target] :
       {std::pair{"sensor_id", &issued.sensor_id}, std::pair{"tenant", &issued.tenant},
        std::pair{"certificate", &issued.certificate}, std::pair{"chain", &issued.chain},
        std::pair{"root", &issued.root}, std::pair{"channel", &issued.channel}}) {
    auto found = reply.find(key);
    if (found == reply.end() || !found->is_string() || found->get<std::string>().empty()) {
      return Error{std::string("the fleet's answer has no \"") + key + "\""};
    }
    *target = found->get<std::string>();
  }
  return issued;
}

Error Refusal(unsigned status, const std::string& body) {
  std::string text = "the fleet refused the enrollment (HTTP " + std::to_string(status) + ")";
  auto problem = nlohmann::json::parse(body, nullptr, false);
  if (problem.is_object()) {
    std::string title = problem.value("title", "");
    std::string detail = problem.value("detail", "");
    if (!title.empty()) text += ": " + Printable(title);
    if (!detail.empty()) text += ": " + Printable(detail);
  } else if (!body.empty()) {
    text += ": " + Printable(body);
  }
  return Error{text};
}

Result<Issued> PostEnroll(const FleetEndpoint& fleet, const std::string& root_pem,
                          const nlohmann::json& request_body, std::chrono::milliseconds timeout) {
  auto context = VerifyingContext(root_pem, fleet.host);
  if (!context) return context.error();
  asio::io_context io;
  TlsStream stream(io, *context);
  CUSTOS_TRY(Connect(io, stream, fleet, timeout));

  http::request<http::string_body> request{http::verb::post, "/v1/enroll", 11};
  request.set(http::field::host, fleet.ToString());
  request.set(http::field::content_type, "application/json");
  request.set(http::field::user_agent, "custos-sensor");
  request.body() = request_body.dump();
  request.prepare_payload();
  beast::get_lowest_layer(stream).expires_after(timeout);
  error_code written =
      Await(io, [&](auto handler) { http::async_write(stream, request, handler); });
  if (written) return Error{"sending the enrollment request failed: " + Describe(written)};

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBytes);
  beast::get_lowest_layer(stream).expires_after(timeout);
  error_code read =
      Await(io, [&](auto handler) { http::async_read(stream, buffer, parser, handler); });
  if (read) return Error{"reading the fleet's answer failed: " + Describe(read)};
  const auto& response = parser.get();
  error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (response.result_int() != 200) return Refusal(response.result_int(), response.body());
  return ParseIssued(response.body());
}

// The root in the answer must be the one the token named; the rest is
// checked by CheckFleetIdentity.
Result<FleetIdentity> IdentityOf(const Issued& issued, const FleetEndpoint& api,
                                 const std::string& ca_hash) {
  auto root = crypto::ParseCertificatePem(issued.root);
  if (!root) return Context("the fleet's root", root.error());
  auto hash = CertificateSha256Hex(root->get());
  if (!hash) return hash.error();
  if (*hash != ca_hash) return Error{"the root in the fleet's answer is not the token's CA"};
  auto channel = ParseFleetEndpoint(issued.channel);
  if (!channel) return Context("the fleet's channel address", channel.error());
  FleetIdentity identity;
  identity.sensor_id = issued.sensor_id;
  identity.tenant = issued.tenant;
  identity.api = api;
  identity.channel = *channel;
  identity.certificate_pem = issued.certificate;
  identity.chain_pem = issued.chain;
  identity.root_pem = issued.root;
  return identity;
}

Result<crypto::KeyPair> KeyFor(const IdentityPaths& paths) {
  std::error_code ignored;
  if (std::filesystem::exists(paths.key, ignored)) return crypto::ReadPrivateKeyFile(paths.key);
  auto key = crypto::KeyPair::Generate(crypto::KeyAlgorithm::kEcdsaP256);
  if (!key) return key.error();
  CUSTOS_TRY(crypto::WritePrivateKeyFile(paths.key, *key));
  return key;
}

Status WriteIdentity(const IdentityPaths& paths, const FleetIdentity& identity) {
  for (auto [path, text] :
       {std::pair{&paths.certificate, &identity.certificate_pem},
        std::pair{&paths.chain, &identity.chain_pem}, std::pair{&paths.root, &identity.root_pem}}) {
    CUSTOS_TRY(WriteFileAtomic(*path, *text, 0644));
  }
  CUSTOS_TRY(SyncDirectory(paths.dir));
  // Last: its presence means the folder is complete.
  nlohmann::json fleet = {{"sensor_id", identity.sensor_id},
                          {"tenant", identity.tenant},
                          {"api", identity.api.ToString()},
                          {"channel", identity.channel.ToString()}};
  CUSTOS_TRY(WriteFileAtomic(paths.fleet, fleet.dump(1) + "\n", 0644));
  return SyncDirectory(paths.dir);
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "sensor";
  return name;
}

}  // namespace

Result<EnrollmentToken> ParseEnrollmentToken(std::string_view token) {
  std::size_t dot = token.rfind('.');
  if (dot == std::string_view::npos || dot == 0) {
    return Error{"the token must be <secret>.<ca-hash>, as `custos fleet token create` prints it"};
  }
  std::string_view secret = token.substr(0, dot);
  std::string hash(token.substr(dot + 1));
  if (!IsBase64Url(secret)) return Error{"the token's secret is not base64url"};
  if (hash.size() != 64 || !IsHex(hash)) {
    return Error{"the token's CA hash must be 64 hex digits (SHA-256)"};
  }
  std::transform(hash.begin(), hash.end(), hash.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return EnrollmentToken{std::string(token), hash};
}

Result<EnrollResult> Enroll(const EnrollOptions& options) {
  auto token = ParseEnrollmentToken(options.token);
  if (!token) return token.error();
  auto fleet = ParseFleetEndpoint(options.fleet);
  if (!fleet) return fleet.error();
  IdentityPaths paths(options.identity_dir);
  if (IsEnrolled(paths.dir)) {
    return Error{paths.dir.string() +
                 " already holds an enrollment (fleet.json); move it away to enroll again"};
  }
  CUSTOS_TRY(MakeDirectories(paths.dir, 0700));

  auto key = KeyFor(paths);
  if (!key) return key.error();
  std::string name = options.name.empty() ? HostName() : options.name;
  auto csr = crypto::Csr::Create(*key, name);
  if (!csr) return csr.error();
  CUSTOS_TRY(WriteFileAtomic(paths.csr, csr->Pem(), 0644));

  auto root_pem = DiscoverRoot(*fleet, token->ca_hash, options.timeout);
  if (!root_pem) return root_pem.error();
  nlohmann::json body = {{"token", token->text}, {"csr", csr->Pem()}, {"name", name}};
  auto issued = PostEnroll(*fleet, *root_pem, body, options.timeout);
  if (!issued) return issued.error();

  auto identity = IdentityOf(*issued, *fleet, token->ca_hash);
  if (!identity) return identity.error();
  identity->key = std::make_shared<const crypto::KeyPair>(std::move(*key));
  // The checks the uplink runs at start, before anything is written.
  if (auto checked = CheckFleetIdentity(*identity); !checked) {
    return Context("the fleet's certificate", checked.error());
  }
  CUSTOS_TRY(WriteIdentity(paths, *identity));
  return EnrollResult{identity->sensor_id, identity->tenant, identity->channel};
}

}  // namespace custos::sensor
