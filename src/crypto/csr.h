// Certificate signing requests (PKCS#10). A sensor creates one from its own
// key pair; the fleet CA parses it, which checks that the request is signed
// by the key it carries (proof the sensor holds the private key). Only the
// public key is taken from a request: the CA sets subject and extensions
// itself. A Csr is immutable; const methods are thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "crypto/key.h"
#include "crypto/openssl_util.h"

namespace custos::crypto {

class Csr {
 public:
  // A request for `key` with subject CN=`common_name`, signed by `key`.
  static Result<Csr> Create(const KeyPair& key, const std::string& common_name);
  // One PEM "CERTIFICATE REQUEST"; refuses damaged encodings, a signature
  // that does not verify with the request's own key, and unacceptable keys.
  static Result<Csr> Parse(std::string_view pem);

  std::string Pem() const;
  // As requested by the sensor: informative only, the CA does not copy it.
  const std::string& common_name() const { return common_name_; }
  // Owned by the request.
  EVP_PKEY* public_key() const { return X509_REQ_get0_pubkey(request_.get()); }

 private:
  Csr(X509ReqPtr request, std::string common_name)
      : request_(std::move(request)), common_name_(std::move(common_name)) {}
  X509ReqPtr request_;
  std::string common_name_;
};

}  // namespace custos::crypto
