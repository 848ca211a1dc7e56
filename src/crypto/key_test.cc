#include "crypto/key.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include "crypto/test_authority.h"

namespace custos::crypto {
namespace {

using testing::Must;

TEST(KeyPair, GeneratesP256ByDefault) {
  KeyPair key = Must(KeyPair::Generate());
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 256);
  EXPECT_EQ(SigningDigest(key.get()), EVP_sha256());
  EXPECT_TRUE(CheckAcceptableKey(key.get(), "key").ok());
}

TEST(KeyPair, P384SignsWithSha384) {
  KeyPair key = Must(KeyPair::Generate(KeyAlgorithm::kEcdsaP384));
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 384);
  EXPECT_EQ(SigningDigest(key.get()), EVP_sha384());
}

TEST(KeyPair, PrivatePemRoundTrips) {
  KeyPair key = Must(KeyPair::Generate());
  std::string pem = Must(key.PrivatePem());
  EXPECT_NE(pem.find("BEGIN PRIVATE KEY"), std::string::npos);
  KeyPair again = Must(KeyPair::FromPrivatePem(pem));
  EXPECT_TRUE(again.SamePublicKey(key.get()));
  EXPECT_EQ(Must(again.PublicPem()), Must(key.PublicPem()));
  KeyPair other = Must(KeyPair::Generate());
  EXPECT_FALSE(other.SamePublicKey(key.get()));
}

TEST(KeyPair, RefusesGarbageAndEncryptedKeys) {
  EXPECT_FALSE(KeyPair::FromPrivatePem("").ok());
  EXPECT_FALSE(KeyPair::FromPrivatePem("-----BEGIN PRIVATE KEY-----\nAAAA\n").ok());
  KeyPair key = Must(KeyPair::Generate());
  EXPECT_FALSE(KeyPair::FromPrivatePem(Must(key.PublicPem())).ok());

  // An encrypted key must fail, not prompt on the terminal for a passphrase.
  BioPtr bio(BIO_new(BIO_s_mem()));
  char passphrase[] = "secret";
  ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio.get(), key.get(), EVP_aes_256_cbc(), nullptr, 0,
                                          nullptr, passphrase),
            1);
  auto encrypted = KeyPair::FromPrivatePem(BioContents(bio.get()));
  ASSERT_FALSE(encrypted.ok());
  EXPECT_NE(encrypted.error().message.find("not an unencrypted PEM private key"), std::string::npos)
      << encrypted.error().message;
}

TEST(KeyPair, AcceptsOnlyStrongKeyTypes) {
  PkeyPtr weak_rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
  ASSERT_TRUE(weak_rsa);
  auto refused = CheckAcceptableKey(weak_rsa.get(), "CSR public key");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("1024-bit RSA"), std::string::npos);

  PkeyPtr rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  EXPECT_TRUE(CheckAcceptableKey(rsa.get(), "key").ok());

  PkeyPtr ed25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  EXPECT_FALSE(CheckAcceptableKey(ed25519.get(), "key").ok());

  PkeyPtr secp256k1(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "secp256k1"));
  ASSERT_TRUE(secp256k1);
  auto curve = CheckAcceptableKey(secp256k1.get(), "key");
  ASSERT_FALSE(curve.ok());
  EXPECT_NE(curve.error().message.find("secp256k1"), std::string::npos);
}

}  // namespace
}  // namespace custos::crypto
