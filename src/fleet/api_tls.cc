#include "fleet/api_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <exception>

#include "crypto/openssl_util.h"
#include "fleet/fleet_layout.h"

namespace custos::fleet {
namespace {

namespace ssl = boost::asio::ssl;

template <typename Setup>
Result<ssl::context> Build(ssl::context::method method, Setup setup) {
  ERR_clear_error();
  try {
    ssl::context context(method);
    SSL_CTX* native = context.native_handle();
    if (SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION) != 1) {
      return crypto::OpenSslError("cannot require TLS 1.3");
    }
    SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    Status status = setup(native);
    if (!status.ok()) return status.error();
    return context;
  } catch (const std::exception& exception) {
    return crypto::OpenSslError(std::string("cannot create TLS context: ") + exception.what());
  }
}

}  // namespace

Result<ssl::context> MakeApiServerContext(const std::string& certificate_pem,
                                          const std::string& chain_pem,
                                          const crypto::KeyPair& key) {
  return Build(ssl::context::tls_server, [&](SSL_CTX* context) -> Status {
    auto certificate = crypto::ParseCertificatePem(certificate_pem);
    if (!certificate.ok()) return Context("API certificate", certificate.error());
    if (SSL_CTX_use_certificate(context, certificate->get()) != 1) {
      return crypto::OpenSslError("cannot use the API certificate");
    }
    auto chain = crypto::ParseCertificateChainPem(chain_pem);
    if (!chain.ok()) return Context("API chain", chain.error());
    for (const crypto::X509Ptr& link : *chain) {
      if (SSL_CTX_add1_chain_cert(context, link.get()) != 1) {
        return crypto::OpenSslError("cannot add a chain certificate");
      }
    }
    if (SSL_CTX_use_PrivateKey(context, key.get()) != 1 ||
        SSL_CTX_check_private_key(context) != 1) {
      return crypto::OpenSslError("the API private key does not match the certificate");
    }
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_options(context, SSL_OP_NO_TICKET);
    return {};
  });
}

Result<ssl::context> MakeApiClientContext(const std::string& root_pem,
                                          const std::string& server_name) {
  if (server_name.empty()) return Error{"an API client context needs the server's name"};
  return Build(ssl::context::tls_client, [&](SSL_CTX* context) -> Status {
    auto root = crypto::ParseCertificatePem(root_pem);
    if (!root.ok()) return Context("fleet root", root.error());
    if (X509_STORE_add_cert(SSL_CTX_get_cert_store(context), root->get()) != 1) {
      return crypto::OpenSslError("cannot trust the fleet root");
    }
    X509_VERIFY_PARAM* parameters = SSL_CTX_get0_param(context);
    X509_VERIFY_PARAM_set_flags(parameters, X509_V_FLAG_X509_STRICT);
    X509_VERIFY_PARAM_set_hostflags(parameters, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int named =
        IsIpAddressText(server_name)
            ? X509_VERIFY_PARAM_set1_ip_asc(parameters, server_name.c_str())
            : X509_VERIFY_PARAM_set1_host(parameters, server_name.c_str(), server_name.size());
    if (named != 1) return crypto::OpenSslError("cannot set the expected server name");
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
    return {};
  });
}

}  // namespace custos::fleet
