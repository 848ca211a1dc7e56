#include "crypto/authority.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include "common/files.h"
#include "crypto/key_file.h"
#include "crypto/test_authority.h"
#include "crypto/verify.h"

namespace custos::crypto {
namespace {

using testing::EnrollTestSensor;
using testing::InitTestAuthority;
using testing::Must;
using testing::TempDir;

mode_t ModeOf(const std::filesystem::path& path) {
  struct stat status {};
  EXPECT_EQ(::stat(path.c_str(), &status), 0) << path;
  return status.st_mode & 07777;
}

X509Ptr ReadCertificate(const std::filesystem::path& path) {
  return Must(ParseCertificatePem(Must(ReadFile(path))));
}

long PathLength(X509* certificate) { return X509_get_pathlen(certificate); }

TEST(Authority, InitCreatesTheLayout) {
  TempDir dir;
  InitTestAuthority(dir.path());
  AuthorityPaths paths(dir.path());
  for (const auto& key : {paths.root_key, paths.issuing_key, paths.server_key}) {
    EXPECT_EQ(ModeOf(key), 0600u) << key;
    EXPECT_TRUE(ReadPrivateKeyFile(key).ok()) << key;
  }
  for (const auto& folder : {paths.root_key.parent_path(), paths.issuing_key.parent_path(),
                             paths.server_key.parent_path()}) {
    EXPECT_EQ(ModeOf(folder), 0700u) << folder;
  }

  X509Ptr root = ReadCertificate(paths.root_certificate);
  X509Ptr issuing = ReadCertificate(paths.issuing_certificate);
  X509Ptr server = ReadCertificate(paths.server_certificate);

  EXPECT_TRUE(X509_get_extension_flags(root.get()) & EXFLAG_SS);
  EXPECT_EQ(X509_check_ca(root.get()), 1);
  EXPECT_EQ(PathLength(root.get()), 1);
  EXPECT_EQ(X509_get_key_usage(root.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));

  EXPECT_EQ(X509_check_ca(issuing.get()), 1);
  EXPECT_EQ(PathLength(issuing.get()), 0);
  EXPECT_EQ(X509_check_issued(root.get(), issuing.get()), X509_V_OK);
  EXPECT_EQ(X509_verify(issuing.get(), X509_get0_pubkey(root.get())), 1);

  EXPECT_EQ(X509_check_ca(server.get()), 0);
  EXPECT_EQ(X509_check_issued(issuing.get(), server.get()), X509_V_OK);
  EXPECT_EQ(X509_get_extended_key_usage(server.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(X509_check_host(server.get(), "fleet.test", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(server.get(), "127.0.0.1", 0), 1);
  EXPECT_NE(X509_check_host(server.get(), "other.test", 0, 0, nullptr), 1);

  auto chain = Must(ParseCertificateChainPem(Must(ReadFile(paths.chain))));
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(X509_cmp(chain[0].get(), issuing.get()), 0);
  EXPECT_EQ(X509_cmp(chain[1].get(), root.get()), 0);

  IssuingAuthority authority = Must(IssuingAuthority::Load(dir.path()));
  Crl crl = Must(authority.ParseCrl(Must(ReadFile(paths.crl))));
  EXPECT_TRUE(crl.revoked().empty());
}

TEST(Authority, InitRefusesAFolderThatHoldsAnAuthority) {
  TempDir dir;
  InitTestAuthority(dir.path());
  std::string root_before = Must(ReadFile(AuthorityPaths(dir.path()).root_certificate));
  AuthorityOptions options;
  options.server_dns_names = {"fleet.test"};
  auto again = InitAuthority(dir.path(), options);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("already holds"), std::string::npos);
  EXPECT_EQ(Must(ReadFile(AuthorityPaths(dir.path()).root_certificate)), root_before);
}

TEST(Authority, InitRefusesBadOptions) {
  TempDir dir;
  AuthorityOptions no_names;
  EXPECT_FALSE(InitAuthority(dir.path() / "a", no_names).ok());
  AuthorityOptions bad_ip;
  bad_ip.server_ip_addresses = {"300.1.1.1"};
  auto refused = InitAuthority(dir.path() / "b", bad_ip);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("300.1.1.1"), std::string::npos);
  AuthorityOptions bad_dns;
  bad_dns.server_dns_names = {"fleet.test,IP:1.2.3.4"};
  EXPECT_FALSE(InitAuthority(dir.path() / "c", bad_dns).ok());
  AuthorityOptions long_issuing;
  long_issuing.server_dns_names = {"fleet.test"};
  long_issuing.issuing_validity = long_issuing.root_validity + std::chrono::days(1);
  EXPECT_FALSE(InitAuthority(dir.path() / "d", long_issuing).ok());
}

TEST(Authority, IssuingCaWorksWithTheRootKeyRemoved) {
  TempDir dir;
  InitTestAuthority(dir.path());
  AuthorityPaths paths(dir.path());
  std::filesystem::remove(paths.root_key);
  IssuingAuthority authority = Must(IssuingAuthority::Load(dir.path()));
  auto sensor = EnrollTestSensor(authority, "sensor-0001");
  std::string crl = Must(
      authority.SignCrl({}, CrlTimes{std::chrono::system_clock::now(),
                                     std::chrono::system_clock::now() + std::chrono::days(1)}));
  PeerIdentity identity = Must(
      VerifySensorChainPem(Must(ReadFile(paths.root_certificate)),
                           sensor.certificate.certificate_pem + sensor.certificate.chain_pem, crl));
  EXPECT_EQ(identity.sensor_id, "sensor-0001");
  EXPECT_EQ(identity.tenant, "acme");
}

TEST(Authority, SignsOnlyThePublicKeyOfACsr) {
  TempDir dir;
  InitTestAuthority(dir.path());
  IssuingAuthority authority = Must(IssuingAuthority::Load(dir.path()));

  // A hostile CSR asks for another name, CA powers and extra names.
  KeyPair key = Must(KeyPair::Generate());
  std::string original = Must(Csr::Create(key, "fleet.test")).Pem();
  BioPtr in = MemoryBio(original);
  X509ReqPtr request(PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr));
  X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(request.get()), "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("other-tenant"), -1, -1, 0);
  STACK_OF(X509_EXTENSION)* extensions = sk_X509_EXTENSION_new_null();
  X509V3_CTX context;
  X509V3_set_ctx(&context, nullptr, nullptr, request.get(), nullptr, 0);
  sk_X509_EXTENSION_push(extensions, X509V3_EXT_conf_nid(nullptr, &context, NID_basic_constraints,
                                                         "critical,CA:TRUE"));
  sk_X509_EXTENSION_push(
      extensions, X509V3_EXT_conf_nid(nullptr, &context, NID_subject_alt_name, "DNS:fleet.test"));
  ASSERT_EQ(X509_REQ_add_extensions(request.get(), extensions), 1);
  sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
  ASSERT_GT(X509_REQ_sign(request.get(), key.get(), EVP_sha256()), 0);
  BioPtr out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(out.get(), request.get());
  Csr csr = Must(Csr::Parse(BioContents(out.get())));

  auto now = std::chrono::system_clock::now();
  IssuedCertificate issued = Must(authority.SignSensorCsr(csr, SensorSubject{"sensor-0002", "acme"},
                                                          std::chrono::days(90), now));
  X509Ptr certificate = Must(ParseCertificatePem(issued.certificate_pem));
  PeerIdentity identity = Must(SensorIdentityOf(certificate.get()));
  EXPECT_EQ(identity.sensor_id, "sensor-0002");
  EXPECT_EQ(identity.tenant, "acme");
  EXPECT_EQ(identity.serial_hex, issued.serial_hex);
  EXPECT_EQ(X509_check_ca(certificate.get()), 0);
  EXPECT_EQ(X509_get_ext_by_NID(certificate.get(), NID_subject_alt_name, -1), -1);
  EXPECT_EQ(X509_get_extended_key_usage(certificate.get()), static_cast<uint32_t>(XKU_SSL_CLIENT));
  EXPECT_EQ(X509_get_key_usage(certificate.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_TRUE(key.SamePublicKey(X509_get0_pubkey(certificate.get())));
  EXPECT_EQ(X509_check_issued(authority.certificate(), certificate.get()), X509_V_OK);
  EXPECT_EQ(issued.chain_pem, authority.chain_pem());
  auto not_after = Must(FromAsn1Time(X509_get0_notAfter(certificate.get())));
  EXPECT_LE(std::chrono::abs(not_after - (now + std::chrono::days(90))), std::chrono::seconds(1));
}

TEST(Authority, SerialsAreRandom128BitNumbers) {
  TempDir dir;
  InitTestAuthority(dir.path());
  IssuingAuthority authority = Must(IssuingAuthority::Load(dir.path()));
  auto first = EnrollTestSensor(authority, "sensor-a");
  auto second = EnrollTestSensor(authority, "sensor-b");
  EXPECT_NE(first.certificate.serial_hex, second.certificate.serial_hex);
  for (const auto& serial : {first.certificate.serial_hex, second.certificate.serial_hex}) {
    EXPECT_LE(serial.size(), 32u);
    // Leading zero bytes are dropped; all 16 zero would be astronomically unlikely.
    EXPECT_GE(serial.size(), 20u);
  }
}

TEST(Authority, RefusesBadSubjectsAndValidities) {
  TempDir dir;
  InitTestAuthority(dir.path());
  IssuingAuthority authority = Must(IssuingAuthority::Load(dir.path()));
  Csr csr = Must(Csr::Create(Must(KeyPair::Generate()), "x"));
  for (const char* id : {"", "../etc", "a b", "-dash", "sensor/1", "sensör"}) {
    auto refused = authority.SignSensorCsr(csr, SensorSubject{id, "acme"}, std::chrono::days(1));
    EXPECT_FALSE(refused.ok()) << id;
  }
  EXPECT_FALSE(
      authority.SignSensorCsr(csr, SensorSubject{"s1", "a,CN=x"}, std::chrono::days(1)).ok());
  EXPECT_FALSE(
      authority.SignSensorCsr(csr, SensorSubject{"s1", "acme"}, std::chrono::seconds(0)).ok());
  auto too_long =
      authority.SignSensorCsr(csr, SensorSubject{"s1", "acme"}, std::chrono::days(365 * 11));
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().message.find("after the issuing CA expires"), std::string::npos);
}

TEST(Authority, LoadRefusesAKeyThatDoesNotMatch) {
  TempDir dir;
  InitTestAuthority(dir.path());
  AuthorityPaths paths(dir.path());
  Must(WritePrivateKeyFile(paths.issuing_key, Must(KeyPair::Generate())));
  auto refused = IssuingAuthority::Load(dir.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("does not match"), std::string::npos);
}

TEST(Authority, LoadRefusesAnIssuingCaFromAnotherRoot) {
  TempDir dir;
  TempDir other;
  InitTestAuthority(dir.path());
  InitTestAuthority(other.path());
  AuthorityPaths paths(dir.path());
  AuthorityPaths other_paths(other.path());
  std::filesystem::copy_file(other_paths.root_certificate, paths.root_certificate,
                             std::filesystem::copy_options::overwrite_existing);
  auto refused = IssuingAuthority::Load(dir.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("does not verify against the root"), std::string::npos)
      << refused.error().message;
}

TEST(Authority, LoadRefusesAnExposedIssuingKey) {
  TempDir dir;
  InitTestAuthority(dir.path());
  ASSERT_EQ(::chmod(AuthorityPaths(dir.path()).issuing_key.c_str(), 0644), 0);
  auto refused = IssuingAuthority::Load(dir.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("mode 0644"), std::string::npos);
}

}  // namespace
}  // namespace custos::crypto
