#include "crypto/key.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>

namespace custos::crypto {
namespace {

constexpr int kMinimumRsaBits = 2048;

// Fails PEM decryption instead of letting OpenSSL prompt on the terminal.
int RefusePassphrase(char*, int, int, void*) { return -1; }

std::string GroupName(const EVP_PKEY* key) {
  char name[64] = {};
  size_t length = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &length) !=
      1) {
    return {};
  }
  return std::string(name, length);
}

}  // namespace

Result<KeyPair> KeyPair::Generate(KeyAlgorithm algorithm) {
  const char* curve = algorithm == KeyAlgorithm::kEcdsaP384 ? "P-384" : "P-256";
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
  if (!key) return OpenSslError(std::string("cannot generate an EC ") + curve + " key");
  return KeyPair(std::move(key));
}

Result<KeyPair> KeyPair::FromPrivatePem(std::string_view pem) {
  ERR_clear_error();
  BioPtr bio = MemoryBio(pem);
  if (!bio) return OpenSslError("cannot read private key PEM");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, RefusePassphrase, nullptr));
  if (!key) {
    return OpenSslError("not an unencrypted PEM private key");
  }
  return KeyPair(std::move(key));
}

KeyPair KeyPair::FromPkey(EVP_PKEY* key) {
  EVP_PKEY_up_ref(key);
  return KeyPair(PkeyPtr(key));
}

Result<std::string> KeyPair::PrivatePem() const {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio) return OpenSslError("cannot allocate secure memory");
  if (PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("cannot write private key PEM");
  }
  return BioContents(bio.get());
}

Result<std::string> KeyPair::PublicPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) {
    return OpenSslError("cannot write public key PEM");
  }
  return BioContents(bio.get());
}

bool KeyPair::SamePublicKey(const EVP_PKEY* other) const {
  return other && EVP_PKEY_eq(key_.get(), other) == 1;
}

const EVP_MD* SigningDigest(const EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC")) {
    std::string group = GroupName(key);
    if (group == "P-384" || group == "secp384r1") return EVP_sha384();
  }
  return EVP_sha256();
}

Status CheckAcceptableKey(const EVP_PKEY* key, const std::string& what) {
  if (!key) return Error{what + " has no public key"};
  if (EVP_PKEY_is_a(key, "EC")) {
    std::string group = GroupName(key);
    if (group == "P-256" || group == "prime256v1" || group == "P-384" || group == "secp384r1") {
      return {};
    }
    return Error{what + " uses EC curve '" + group + "'; only P-256 and P-384 are accepted"};
  }
  if (EVP_PKEY_is_a(key, "RSA")) {
    int bits = EVP_PKEY_get_bits(key);
    if (bits >= kMinimumRsaBits) return {};
    return Error{what + " is a " + std::to_string(bits) + "-bit RSA key; at least " +
                 std::to_string(kMinimumRsaBits) + " bits are required"};
  }
  const char* type = EVP_PKEY_get0_type_name(key);
  return Error{what + " has key type " + (type ? type : "unknown") +
               "; only EC P-256/P-384 and RSA are accepted"};
}

}  // namespace custos::crypto
