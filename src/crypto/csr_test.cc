#include "crypto/csr.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <algorithm>

#include "crypto/test_authority.h"

namespace custos::crypto {
namespace {

using testing::Must;

std::string ToDer(const std::string& pem) {
  BioPtr in = MemoryBio(pem);
  X509ReqPtr request(PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr));
  unsigned char* der = nullptr;
  int length = i2d_X509_REQ(request.get(), &der);
  std::string bytes(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return bytes;
}

// Re-wraps DER as PEM without parsing it, so damaged content survives.
std::string DerToPem(const std::string& der) {
  BioPtr out(BIO_new(BIO_s_mem()));
  PEM_write_bio(out.get(), "CERTIFICATE REQUEST", "",
                reinterpret_cast<const unsigned char*>(der.data()), static_cast<long>(der.size()));
  return BioContents(out.get());
}

TEST(Csr, CreateAndParseRoundTrip) {
  KeyPair key = Must(KeyPair::Generate());
  Csr created = Must(Csr::Create(key, "sensor-0001"));
  std::string pem = created.Pem();
  EXPECT_NE(pem.find("BEGIN CERTIFICATE REQUEST"), std::string::npos);
  Csr parsed = Must(Csr::Parse(pem));
  EXPECT_EQ(parsed.common_name(), "sensor-0001");
  EXPECT_TRUE(key.SamePublicKey(parsed.public_key()));
}

TEST(Csr, RefusesATamperedRequest) {
  KeyPair key = Must(KeyPair::Generate());
  std::string der = ToDer(Must(Csr::Create(key, "sensor-0001")).Pem());
  // Change the signed subject: the signature no longer covers what is there.
  auto at = der.find("sensor-0001");
  ASSERT_NE(at, std::string::npos);
  der[at + 10] = '2';
  auto refused = Csr::Parse(DerToPem(der));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("signature does not verify"), std::string::npos)
      << refused.error().message;
}

TEST(Csr, RefusesARequestSignedByAnotherKey) {
  KeyPair key = Must(KeyPair::Generate());
  KeyPair other = Must(KeyPair::Generate());
  std::string original = Must(Csr::Create(key, "sensor-0001")).Pem();
  BioPtr in = MemoryBio(original);
  X509ReqPtr request(PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr));
  ASSERT_GT(X509_REQ_sign(request.get(), other.get(), EVP_sha256()), 0);
  BioPtr out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(out.get(), request.get());
  auto refused = Csr::Parse(BioContents(out.get()));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("signature does not verify"), std::string::npos);
}

TEST(Csr, RefusesBadInputWithAClearError) {
  auto empty = Csr::Parse("");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("not a valid PEM CERTIFICATE REQUEST"), std::string::npos)
      << empty.error().message;
  EXPECT_FALSE(Csr::Parse("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                          "-----END CERTIFICATE REQUEST-----\n")
                   .ok());
  // Truncated DER.
  std::string der = ToDer(Must(Csr::Create(Must(KeyPair::Generate()), "s")).Pem());
  EXPECT_FALSE(Csr::Parse(DerToPem(der.substr(0, der.size() / 2))).ok());
  // Oversized input is refused before parsing.
  auto huge = Csr::Parse(std::string(100 * 1024, 'A'));
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.error().message.find("larger than"), std::string::npos);
}

TEST(Csr, RefusesWeakKeys) {
  PkeyPtr weak(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
  ASSERT_TRUE(weak);
  Csr request = Must(Csr::Create(KeyPair::FromPkey(weak.get()), "sensor-0001"));
  auto refused = Csr::Parse(request.Pem());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("1024-bit RSA"), std::string::npos);
}

TEST(Csr, RefusesBadCommonNames) {
  KeyPair key = Must(KeyPair::Generate());
  EXPECT_FALSE(Csr::Create(key, "").ok());
  EXPECT_FALSE(Csr::Create(key, std::string(65, 'a')).ok());
}

}  // namespace
}  // namespace custos::crypto
