// TLS 1.3 contexts for the fleet channel over Boost.Asio, both ends with
// certificates from the fleet CA. The server context requires a client
// certificate that chains to the root and is not on the RevocationList's
// current CRL (checked in every handshake, so a CRL update applies to the
// next handshake without a restart); session resumption is off so a revoked
// sensor cannot skip that check. The client context verifies the server
// certificate against the root and the expected host name or IP address.
// A context may be shared by many streams and threads once built.
#pragma once

#include <boost/asio/ssl.hpp>
#include <memory>
#include <string>

#include "common/result.h"
#include "crypto/key.h"
#include "crypto/revocation.h"
#include "crypto/verify.h"

namespace custos::crypto {

struct ServerTlsOptions {
  std::string root_pem;         // the fleet root: the only trust anchor
  std::string certificate_pem;  // the server certificate (leaf first)
  std::string chain_pem;        // intermediates sent with it; self-signed ones are skipped
  std::shared_ptr<RevocationList> revocations;  // required
};

struct ClientTlsOptions {
  std::string root_pem;
  std::string certificate_pem;  // the sensor certificate (leaf first)
  std::string chain_pem;        // intermediates sent with it; self-signed ones are skipped
  std::string server_name;      // DNS name or IP address the server certificate must name
};

Result<boost::asio::ssl::context> MakeServerContext(const ServerTlsOptions& options,
                                                    const KeyPair& key);
Result<boost::asio::ssl::context> MakeClientContext(const ClientTlsOptions& options,
                                                    const KeyPair& key);

// Sets SNI on a client stream before its handshake (DNS names only; IP
// addresses are not sent, as RFC 6066 requires).
Status SetServerName(SSL* ssl, const std::string& server_name);

// The verified client's identity on an established server-side stream.
Result<PeerIdentity> PeerIdentityOf(SSL* ssl);

template <typename Stream>
Result<PeerIdentity> PeerIdentityOf(Stream& stream) {
  return PeerIdentityOf(stream.native_handle());
}

}  // namespace custos::crypto
