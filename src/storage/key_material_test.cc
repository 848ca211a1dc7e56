#include "storage/key_material.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace custos::storage {
namespace {

std::vector<std::uint8_t> Bytes(const SecretBytes& secret) {
  return {secret.data(), secret.data() + secret.size()};
}

SecretBytes FixedKey(std::uint8_t first) {
  std::vector<std::uint8_t> bytes(kDataKeySize);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(first + i);
  auto key = SecretBytes::Copy(bytes);
  EXPECT_TRUE(key.ok()) << key.error().message;
  return std::move(*key);
}

// RFC 5869 by hand from HMAC-SHA256, for an output of one hash length:
// PRK = HMAC(zero salt, IKM); OKM = HMAC(PRK, info || 0x01).
std::vector<std::uint8_t> ReferenceHkdf(const SecretBytes& ikm, const std::string& info) {
  std::uint8_t salt[32] = {};
  std::uint8_t prk[32];
  unsigned prk_length = 0;
  HMAC(EVP_sha256(), salt, sizeof salt, ikm.data(), ikm.size(), prk, &prk_length);
  std::vector<std::uint8_t> message(info.begin(), info.end());
  message.push_back(1);
  std::vector<std::uint8_t> okm(32);
  unsigned okm_length = 0;
  HMAC(EVP_sha256(), prk, prk_length, message.data(), message.size(), okm.data(), &okm_length);
  return okm;
}

// The VmFlags and Locked lines of the /proc/self/smaps entry holding `address`.
struct MappingFacts {
  bool found = false;
  std::string flags;
  long locked_kb = -1;
};

MappingFacts DescribeMapping(const void* address) {
  auto target = reinterpret_cast<std::uintptr_t>(address);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  MappingFacts facts;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t start = 0, end = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> start >> dash >> end && dash == '-' &&
        line.find(':') > line.find(' ')) {
      inside = start <= target && target < end;
      if (inside) facts.found = true;
      continue;
    }
    if (!inside) continue;
    if (line.rfind("Locked:", 0) == 0) facts.locked_kb = std::stol(line.substr(7));
    if (line.rfind("VmFlags:", 0) == 0) facts.flags = line.substr(8);
  }
  return facts;
}

TEST(SecretBytesTest, LivesInLockedUndumpedPagesWipedOnFork) {
  auto secret = SecretBytes::Random(kDataKeySize);
  ASSERT_TRUE(secret.ok()) << secret.error().message;
  MappingFacts facts = DescribeMapping(secret->data());
  ASSERT_TRUE(facts.found);
  EXPECT_GT(facts.locked_kb, 0);
  // smaps names MADV_DONTDUMP "dd", mlock "lo" and MADV_WIPEONFORK "wf".
  EXPECT_NE(facts.flags.find(" dd"), std::string::npos) << facts.flags;
  EXPECT_NE(facts.flags.find(" lo"), std::string::npos) << facts.flags;
  EXPECT_NE(facts.flags.find(" wf"), std::string::npos) << facts.flags;
}

TEST(SecretBytesTest, MoveLeavesTheSourceEmptyAndUnmapsOnDestruction) {
  auto secret = SecretBytes::Random(kDataKeySize);
  ASSERT_TRUE(secret.ok());
  const void* address = secret->data();
  SecretBytes moved = std::move(*secret);
  EXPECT_EQ(secret->size(), 0u);
  EXPECT_EQ(secret->data(), nullptr);
  EXPECT_EQ(moved.data(), address);
  { SecretBytes gone = std::move(moved); }
  EXPECT_FALSE(DescribeMapping(address).found);
}

TEST(SecretBytesTest, CopyAndCompare) {
  SecretBytes a = FixedKey(1);
  SecretBytes b = FixedKey(1);
  SecretBytes c = FixedKey(2);
  EXPECT_TRUE(a.Equals(b));
  EXPECT_FALSE(a.Equals(c));
  EXPECT_EQ(Bytes(a)[0], 1);
  EXPECT_FALSE(SecretBytes::Allocate(0).ok());
}

TEST(KeyDerivationTest, IsHkdfSha256WithTheDocumentedInfo) {
  SecretBytes data_key = FixedKey(7);
  auto instrument = DeriveInstrumentKey(data_key, "flowmeter");
  ASSERT_TRUE(instrument.ok()) << instrument.error().message;
  EXPECT_EQ(Bytes(*instrument), ReferenceHkdf(data_key, "custos instrument flowmeter"));
  auto spool = DeriveSpoolKey(data_key);
  ASSERT_TRUE(spool.ok());
  EXPECT_EQ(Bytes(*spool), ReferenceHkdf(data_key, "custos spool"));
  EXPECT_EQ(instrument->size(), kDirectoryKeySize);
}

TEST(KeyDerivationTest, DeterministicAndDistinctPerInstrumentAndDataKey) {
  SecretBytes data_key = FixedKey(7);
  auto a1 = DeriveInstrumentKey(data_key, "alpha");
  auto a2 = DeriveInstrumentKey(data_key, "alpha");
  auto b = DeriveInstrumentKey(data_key, "beta");
  auto spool_named = DeriveInstrumentKey(data_key, "spool");
  auto spool = DeriveSpoolKey(data_key);
  SecretBytes other_data_key = FixedKey(8);
  auto a_other = DeriveInstrumentKey(other_data_key, "alpha");
  ASSERT_TRUE(a1.ok() && a2.ok() && b.ok() && spool_named.ok() && spool.ok() && a_other.ok());
  EXPECT_TRUE(a1->Equals(*a2));
  EXPECT_FALSE(a1->Equals(*b));
  EXPECT_FALSE(spool->Equals(*spool_named));
  EXPECT_FALSE(a1->Equals(*a_other));
  EXPECT_FALSE(a1->Equals(data_key));
}

TEST(KeyDerivationTest, RefusesADataKeyOfTheWrongSize) {
  auto short_key = SecretBytes::Random(16);
  ASSERT_TRUE(short_key.ok());
  auto derived = DeriveInstrumentKey(*short_key, "alpha");
  ASSERT_FALSE(derived.ok());
  EXPECT_NE(derived.error().message.find("32 bytes"), std::string::npos);
  SecretBytes data_key = FixedKey(1);
  EXPECT_FALSE(DeriveInstrumentKey(data_key, "").ok());
}

}  // namespace
}  // namespace custos::storage
