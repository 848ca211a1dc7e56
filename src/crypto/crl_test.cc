#include "crypto/crl.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <optional>

#include "common/files.h"
#include "crypto/authority.h"
#include "crypto/revocation.h"
#include "crypto/test_authority.h"

namespace custos::crypto {
namespace {

using std::chrono::hours;
using testing::InitTestAuthority;
using testing::Must;
using testing::TempDir;

class CrlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitTestAuthority(dir_.path());
    authority_.emplace(Must(IssuingAuthority::Load(dir_.path())));
  }

  TempDir dir_;
  std::optional<IssuingAuthority> authority_;
  TimePoint now_ = std::chrono::system_clock::from_time_t(
      std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()));
};

TEST_F(CrlTest, BuildsAndParsesRevokedSerials) {
  std::vector<RevokedCertificate> revoked = {{"00ab12", now_ - hours(2)},
                                             {"FF00FF00FF00FF00FF00FF00FF00FF00", now_ - hours(1)},
                                             {"AB12", now_ - hours(3)}};
  std::string pem = Must(authority_->SignCrl(revoked, CrlTimes{now_, now_ + hours(24), 7}));
  Crl crl = Must(authority_->ParseCrl(pem, now_));
  EXPECT_EQ(crl.this_update(), now_);
  EXPECT_EQ(crl.next_update(), now_ + hours(24));
  EXPECT_EQ(crl.number(), 7u);
  ASSERT_EQ(crl.revoked().size(), 2u);  // AB12 appears twice, merged
  EXPECT_TRUE(crl.IsRevoked("ab12"));
  EXPECT_TRUE(crl.IsRevoked("0000AB12"));
  EXPECT_TRUE(crl.IsRevoked("ff00ff00ff00ff00ff00ff00ff00ff00"));
  EXPECT_FALSE(crl.IsRevoked("AB13"));
  for (const auto& entry : crl.revoked()) {
    if (entry.serial_hex == "AB12") {
      EXPECT_EQ(entry.revoked_at, now_ - hours(3));
    }
  }
  // The CRL is a standard one: OpenSSL's own verifier accepts its signature.
  BioPtr bio = MemoryBio(pem);
  X509CrlPtr raw(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  EXPECT_EQ(X509_CRL_verify(raw.get(), X509_get0_pubkey(authority_->certificate())), 1);
}

TEST_F(CrlTest, DefaultNumberGrowsWithTime) {
  Crl first = Must(authority_->ParseCrl(
      Must(authority_->SignCrl({}, CrlTimes{now_ - hours(1), now_ + hours(1)})), now_));
  Crl second = Must(
      authority_->ParseCrl(Must(authority_->SignCrl({}, CrlTimes{now_, now_ + hours(1)})), now_));
  EXPECT_LT(first.number(), second.number());
}

TEST_F(CrlTest, RefusesBadSerialsAndTimes) {
  EXPECT_FALSE(authority_->SignCrl({{"xyz", now_}}, CrlTimes{now_, now_ + hours(1)}).ok());
  EXPECT_FALSE(authority_->SignCrl({{"0", now_}}, CrlTimes{now_, now_ + hours(1)}).ok());
  EXPECT_FALSE(
      authority_->SignCrl({{std::string(41, 'F'), now_}}, CrlTimes{now_, now_ + hours(1)}).ok());
  EXPECT_FALSE(authority_->SignCrl({}, CrlTimes{now_, now_}).ok());
}

TEST_F(CrlTest, ParseRefusesExpiredFutureForeignAndTamperedCrls) {
  std::string pem = Must(authority_->SignCrl({{"01", now_}}, CrlTimes{now_, now_ + hours(1)}));
  auto expired = authority_->ParseCrl(pem, now_ + hours(2));
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.error().message.find("expired"), std::string::npos);
  auto future = authority_->ParseCrl(pem, now_ - hours(1));
  ASSERT_FALSE(future.ok());
  EXPECT_NE(future.error().message.find("in the future"), std::string::npos);

  TempDir other_dir;
  InitTestAuthority(other_dir.path(), "Other Fleet");
  IssuingAuthority other = Must(IssuingAuthority::Load(other_dir.path()));
  auto foreign =
      authority_->ParseCrl(Must(other.SignCrl({}, CrlTimes{now_, now_ + hours(1)})), now_);
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.error().message.find("another authority"), std::string::npos);

  // Same CA name, different key: the signature check must catch it.
  TempDir twin_dir;
  InitTestAuthority(twin_dir.path());
  IssuingAuthority twin = Must(IssuingAuthority::Load(twin_dir.path()));
  auto forged = authority_->ParseCrl(Must(twin.SignCrl({}, CrlTimes{now_, now_ + hours(1)})), now_);
  ASSERT_FALSE(forged.ok());
  EXPECT_NE(forged.error().message.find("signature does not verify"), std::string::npos);

  EXPECT_FALSE(authority_->ParseCrl("garbage", now_).ok());
}

TEST_F(CrlTest, RevocationListTakesNewerCrlsOnly) {
  std::string issuer = CertificateToPem(authority_->certificate());
  auto list = Must(RevocationList::Create(
      issuer, Must(authority_->SignCrl({}, CrlTimes{now_, now_ + hours(1), 10})), now_));
  EXPECT_FALSE(list->IsRevoked("0A"));
  Must(list->Update(Must(authority_->SignCrl({{"0A", now_}}, CrlTimes{now_, now_ + hours(1), 11})),
                    now_));
  EXPECT_TRUE(list->IsRevoked("0A"));
  auto older =
      list->Update(Must(authority_->SignCrl({}, CrlTimes{now_, now_ + hours(1), 9})), now_);
  ASSERT_FALSE(older.ok());
  EXPECT_NE(older.error().message.find("older"), std::string::npos);
  EXPECT_TRUE(list->IsRevoked("0A"));
  EXPECT_FALSE(list->Update("garbage", now_).ok());
  EXPECT_EQ(list->Current()->number(), 11u);
}

}  // namespace
}  // namespace custos::crypto
