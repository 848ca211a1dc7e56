// Asymmetric key pairs for Custos identities (fleet CA, fleet server,
// sensors): generation, PEM in and out. ECDSA P-256 is the default; P-384 is
// there for operators who require it. A KeyPair is immutable after creation,
// so const methods may be called from several threads at once.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "crypto/openssl_util.h"

namespace custos::crypto {

enum class KeyAlgorithm { kEcdsaP256, kEcdsaP384 };

class KeyPair {
 public:
  static Result<KeyPair> Generate(KeyAlgorithm algorithm = KeyAlgorithm::kEcdsaP256);
  // An unencrypted PEM private key (PKCS#8 or traditional). Encrypted keys
  // are refused rather than prompting on a terminal.
  static Result<KeyPair> FromPrivatePem(std::string_view pem);
  // Takes a reference to `key` (not null; it must hold a private key).
  static KeyPair FromPkey(EVP_PKEY* key);

  // PKCS#8 without encryption. The caller holds a secret: keep it brief and
  // OPENSSL_cleanse it (WritePrivateKeyFile does).
  Result<std::string> PrivatePem() const;
  Result<std::string> PublicPem() const;
  // True when both hold the same public key.
  bool SamePublicKey(const EVP_PKEY* other) const;

  EVP_PKEY* get() const { return key_.get(); }

 private:
  explicit KeyPair(PkeyPtr key) : key_(std::move(key)) {}
  PkeyPtr key_;
};

// The digest Custos signs with for `key`: SHA-384 for P-384, else SHA-256.
const EVP_MD* SigningDigest(const EVP_PKEY* key);

// Refuses keys too weak or of a type Custos does not issue for: accepts
// EC P-256/P-384 and RSA of 2048 bits or more. `what` names the key's owner.
Status CheckAcceptableKey(const EVP_PKEY* key, const std::string& what);

}  // namespace custos::crypto
