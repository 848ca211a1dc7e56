// One HTTPS request on an io_context, the TLS contexts of the admin and of
// an enrolling sensor, and the enrolling sensor's check of the fleet.
#include "bench/fleet/https_exchange.h"

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <exception>
#include <utility>

#include "crypto/certificate.h"
#include "crypto/openssl_util.h"

namespace custos::fleetbench {

void HttpsExchange::Run(const tcp::endpoint& server, http::request<http::string_body> request,
                        ServerCheck check, Done done) {
  request_ = std::move(request);
  check_ = std::move(check);
  done_ = std::move(done);
  beast::get_lowest_layer(stream_).expires_after(kStepTimeout);
  beast::get_lowest_layer(stream_).async_connect(
      server, [self = shared_from_this()](beast::error_code error) { self->OnConnect(error); });
}

void HttpsExchange::OnConnect(beast::error_code error) {
  if (error) return Finish(Error{"connect: " + error.message()});
  stream_.async_handshake(ssl::stream_base::client,
                          [self = shared_from_this()](beast::error_code handshake_error) {
                            self->OnHandshake(handshake_error);
                          });
}

void HttpsExchange::OnHandshake(beast::error_code error) {
  if (error) return Finish(Error{"TLS handshake: " + error.message()});
  if (check_) {
    if (auto checked = check_(stream_.native_handle()); !checked.ok()) {
      return Finish(checked.error());
    }
  }
  http::async_write(stream_, request_,
                    [self = shared_from_this()](beast::error_code write_error, std::size_t) {
                      if (write_error) return self->Finish(Error{"send: " + write_error.message()});
                      self->Read();
                    });
}

void HttpsExchange::Read() {
  parser_.body_limit(64 * 1024 * 1024);
  http::async_read(stream_, buffer_, parser_,
                   [self = shared_from_this()](beast::error_code error, std::size_t) {
                     if (error) return self->Finish(Error{"read reply: " + error.message()});
                     HttpReply reply;
                     reply.status = static_cast<int>(self->parser_.get().result_int());
                     reply.body = std::move(self->parser_.get().body());
                     self->Finish(std::move(reply));
                   });
}

void HttpsExchange::Finish(Result<HttpReply> result) {
  beast::error_code ignored;
  beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(stream_).close();
  if (done_) std::exchange(done_, nullptr)(std::move(result));
}

http::request<http::string_body> MakeRequest(http::verb method, const std::string& target,
                                             const std::string& host, const std::string& bearer,
                                             const std::string& body) {
  http::request<http::string_body> request(method, target, 11);
  request.set(http::field::host, host);
  request.set(http::field::user_agent, "custos-fleet-bench");
  if (!bearer.empty()) request.set(http::field::authorization, "Bearer " + bearer);
  if (!body.empty()) {
    request.set(http::field::content_type, "application/json");
    request.body() = body;
  }
  request.keep_alive(false);
  request.prepare_payload();
  return request;
}

Result<ssl::context> MakeAdminContext(const std::string& root_pem) {
  try {
    ssl::context context(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_3_VERSION);
    context.add_certificate_authority(asio::buffer(root_pem));
    context.set_verify_mode(ssl::verify_peer);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(context.native_handle()), kHost);
    return context;
  } catch (const std::exception& exception) {
    return Error{std::string("admin TLS context: ") + exception.what()};
  }
}

Result<ssl::context> MakeEnrollContext() {
  try {
    ssl::context context(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_3_VERSION);
    context.set_verify_mode(ssl::verify_none);
    return context;
  } catch (const std::exception& exception) {
    return Error{std::string("enrollment TLS context: ") + exception.what()};
  }
}

Status CheckFleetByHash(SSL* ssl, const std::string& ca_hash, const std::string& address) {
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);  // client side: leaf first
  if (!chain || sk_X509_num(chain) == 0) return Error{"the fleet sent no certificate"};
  X509* root = nullptr;
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    X509* certificate = sk_X509_value(chain, i);
    bool self_signed = (X509_get_extension_flags(certificate) & EXFLAG_SS) != 0;
    if (!self_signed) continue;
    auto hash = crypto::CertificateSha256Hex(certificate);
    if (!hash) return hash.error();
    if (*hash == ca_hash) root = certificate;
  }
  if (!root) return Error{"no certificate the fleet sent matches the token's CA hash"};
  crypto::X509StorePtr store(X509_STORE_new());
  crypto::X509StoreContextPtr context(X509_STORE_CTX_new());
  if (!store || !context || X509_STORE_add_cert(store.get(), root) != 1 ||
      X509_STORE_CTX_init(context.get(), store.get(), sk_X509_value(chain, 0), chain) != 1) {
    return crypto::OpenSslError("cannot set up the fleet's verification");
  }
  X509_STORE_CTX_set_purpose(context.get(), X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_ip_asc(X509_STORE_CTX_get0_param(context.get()), address.c_str());
  if (X509_verify_cert(context.get()) != 1) {
    return Error{std::string("the fleet's certificate does not verify against its root: ") +
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(context.get()))};
  }
  return {};
}

std::string ProblemText(const HttpReply& reply) {
  std::string text = "HTTP " + std::to_string(reply.status) + ": ";
  return text + reply.body.substr(0, 512);
}

}  // namespace custos::fleetbench
