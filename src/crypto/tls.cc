#include "crypto/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <exception>

namespace custos::crypto {
namespace {

namespace ssl = boost::asio::ssl;

// The SSL_CTX keeps the revocation list alive through its ex_data slot.
void FreeRevocations(void*, void* pointer, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::shared_ptr<RevocationList>*>(pointer);
}

int RevocationsIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeRevocations);
  return index;
}

// Replaces X509_verify_cert for client certificates: the same verification
// with the CRL that is current when this handshake reaches it.
int VerifyClientChain(X509_STORE_CTX* context, void* argument) {
  auto* revocations = static_cast<RevocationList*>(argument);
  std::shared_ptr<const Crl> crl = revocations->Current();
  CrlStackPtr crls(sk_X509_CRL_new_null());
  if (!crls || !sk_X509_CRL_push(crls.get(), crl->get())) {
    X509_STORE_CTX_set_error(context, X509_V_ERR_OUT_OF_MEM);
    return 0;
  }
  return VerifyWithCrls(context, crls.get());
}

bool IsSelfSigned(X509* certificate) {
  return (X509_get_extension_flags(certificate) & EXFLAG_SS) != 0;
}

bool IsIpAddress(const std::string& text) {
  unsigned char buffer[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, text.c_str(), buffer) == 1 ||
         ::inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

Status CommonSetup(SSL_CTX* context, const std::string& root_pem,
                   const std::string& certificate_pem, const std::string& chain_pem,
                   const KeyPair& key) {
  if (SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION) != 1) {
    return OpenSslError("cannot require TLS 1.3");
  }
  SSL_CTX_set_options(context, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);

  auto root = ParseCertificatePem(root_pem);
  if (!root.ok()) return Context("TLS root", root.error());
  if (X509_STORE_add_cert(SSL_CTX_get_cert_store(context), root->get()) != 1) {
    return OpenSslError("cannot trust the root");
  }
  X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(context), X509_V_FLAG_X509_STRICT);

  auto certificates = ParseCertificateChainPem(certificate_pem);
  if (!certificates.ok()) return Context("TLS certificate", certificates.error());
  if (SSL_CTX_use_certificate(context, certificates->front().get()) != 1) {
    return OpenSslError("cannot use the TLS certificate");
  }
  std::vector<X509Ptr> extra;
  for (size_t i = 1; i < certificates->size(); ++i) extra.push_back(std::move((*certificates)[i]));
  if (!chain_pem.empty()) {
    auto chain = ParseCertificateChainPem(chain_pem);
    if (!chain.ok()) return Context("TLS chain", chain.error());
    for (X509Ptr& certificate : *chain) extra.push_back(std::move(certificate));
  }
  for (const X509Ptr& certificate : extra) {
    if (IsSelfSigned(certificate.get())) continue;
    if (SSL_CTX_add1_chain_cert(context, certificate.get()) != 1) {
      return OpenSslError("cannot add a chain certificate");
    }
  }
  if (SSL_CTX_use_PrivateKey(context, key.get()) != 1 || SSL_CTX_check_private_key(context) != 1) {
    return OpenSslError("the TLS private key does not match the certificate");
  }
  return {};
}

template <typename Setup>
Result<ssl::context> BuildContext(ssl::context::method method, Setup setup) {
  ERR_clear_error();
  try {
    ssl::context context(method);
    Status status = setup(context.native_handle());
    if (!status.ok()) return status.error();
    return context;
  } catch (const std::exception& exception) {
    return OpenSslError(std::string("cannot create TLS context: ") + exception.what());
  }
}

}  // namespace

Result<ssl::context> MakeServerContext(const ServerTlsOptions& options, const KeyPair& key) {
  if (!options.revocations) return Error{"a TLS server context needs a revocation list"};
  return BuildContext(ssl::context::tls_server, [&](SSL_CTX* context) -> Status {
    CUSTOS_TRY(
        CommonSetup(context, options.root_pem, options.certificate_pem, options.chain_pem, key));
    // A resumed session skips certificate verification, and with it the CRL.
    SSL_CTX_set_options(context, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set_num_tickets(context, 0) != 1) return OpenSslError("cannot disable tickets");
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    auto* keep = new std::shared_ptr<RevocationList>(options.revocations);
    if (SSL_CTX_set_ex_data(context, RevocationsIndex(), keep) != 1) {
      delete keep;
      return OpenSslError("cannot attach the revocation list");
    }
    SSL_CTX_set_cert_verify_callback(context, VerifyClientChain, options.revocations.get());
    return {};
  });
}

Result<ssl::context> MakeClientContext(const ClientTlsOptions& options, const KeyPair& key) {
  if (options.server_name.empty()) return Error{"a TLS client context needs the server's name"};
  return BuildContext(ssl::context::tls_client, [&](SSL_CTX* context) -> Status {
    CUSTOS_TRY(
        CommonSetup(context, options.root_pem, options.certificate_pem, options.chain_pem, key));
    X509_VERIFY_PARAM* parameters = SSL_CTX_get0_param(context);
    X509_VERIFY_PARAM_set_hostflags(parameters, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int named = IsIpAddress(options.server_name)
                    ? X509_VERIFY_PARAM_set1_ip_asc(parameters, options.server_name.c_str())
                    : X509_VERIFY_PARAM_set1_host(parameters, options.server_name.c_str(),
                                                  options.server_name.size());
    if (named != 1) return OpenSslError("cannot set the expected server name");
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
    return {};
  });
}

Status SetServerName(SSL* ssl, const std::string& server_name) {
  if (IsIpAddress(server_name)) return {};
  if (SSL_set_tlsext_host_name(ssl, server_name.c_str()) != 1) {
    return OpenSslError("cannot set SNI " + server_name);
  }
  return {};
}

Result<PeerIdentity> PeerIdentityOf(SSL* ssl) {
  if (!ssl || !SSL_is_init_finished(ssl)) return Error{"TLS handshake not finished"};
  long verified = SSL_get_verify_result(ssl);
  if (verified != X509_V_OK) {
    return Error{std::string("peer certificate not verified: ") +
                 X509_verify_cert_error_string(verified)};
  }
  return SensorIdentityOf(SSL_get0_peer_certificate(ssl));
}

}  // namespace custos::crypto
