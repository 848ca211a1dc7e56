#include "crypto/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "crypto/openssl_util.h"

namespace custos::crypto {
namespace {

constexpr int kTokenBytes = 32;

}  // namespace

Result<std::string> GenerateEnrollmentToken() {
  unsigned char bytes[kTokenBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return OpenSslError("RAND_bytes");
  // 4 output characters per 3 input bytes, plus the terminating NUL.
  unsigned char encoded[4 * ((kTokenBytes + 2) / 3) + 1];
  int length = EVP_EncodeBlock(encoded, bytes, sizeof bytes);
  OPENSSL_cleanse(bytes, sizeof bytes);
  std::string token(reinterpret_cast<char*>(encoded), static_cast<size_t>(length));
  OPENSSL_cleanse(encoded, sizeof encoded);
  while (!token.empty() && token.back() == '=') token.pop_back();
  for (char& c : token) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return token;
}

Result<std::string> HashEnrollmentToken(std::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(token.data(), token.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    return OpenSslError("SHA-256");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  return hex;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace custos::crypto
