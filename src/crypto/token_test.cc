#include "crypto/token.h"

#include <gtest/gtest.h>

#include <set>

#include "crypto/test_authority.h"

namespace custos::crypto {
namespace {

using testing::Must;

TEST(EnrollmentToken, Is43Base64UrlCharactersAndRandom) {
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) {
    std::string token = Must(GenerateEnrollmentToken());
    ASSERT_EQ(token.size(), 43u);
    for (char c : token) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << token;
    }
    seen.insert(token);
  }
  EXPECT_EQ(seen.size(), 64u);
}

TEST(EnrollmentToken, HashIsSha256Hex) {
  // FIPS 180-2 test vector.
  EXPECT_EQ(Must(HashEnrollmentToken("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string token = Must(GenerateEnrollmentToken());
  EXPECT_EQ(Must(HashEnrollmentToken(token)), Must(HashEnrollmentToken(token)));
  EXPECT_NE(Must(HashEnrollmentToken(token)), Must(HashEnrollmentToken(token + "x")));
}

TEST(EnrollmentToken, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abcdef", "abcdef"));
  EXPECT_FALSE(ConstantTimeEquals("abcdef", "abcdeg"));
  EXPECT_FALSE(ConstantTimeEquals("abcdef", "Abcdef"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcdef"));
  EXPECT_FALSE(ConstantTimeEquals("abcdef", ""));
}

}  // namespace
}  // namespace custos::crypto
