// TLS contexts of the API port, where only the server has a certificate
// (the channel port's mutual contexts are in crypto/tls.h). The server sends
// its whole chain up to and including the root, because an enrolling sensor
// trusts the fleet by comparing that root with the hash in its token. The
// client context trusts only the given root and checks the server's name.
// A context may be shared by many streams and threads once built.
#pragma once

#include <boost/asio/ssl.hpp>
#include <string>

#include "common/result.h"
#include "crypto/key.h"

namespace custos::fleet {

Result<boost::asio::ssl::context> MakeApiServerContext(const std::string& certificate_pem,
                                                       const std::string& chain_pem,
                                                       const crypto::KeyPair& key);

// `server_name` is the DNS name or IP address the server certificate must name.
Result<boost::asio::ssl::context> MakeApiClientContext(const std::string& root_pem,
                                                       const std::string& server_name);

}  // namespace custos::fleet
