#include "crypto/openssl_util.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cctype>
#include <ctime>
#include <limits>

namespace custos::crypto {
namespace {

// RFC 5280 allows serials up to 20 octets.
constexpr size_t kMaxSerialHexDigits = 40;

}  // namespace

Error OpenSslError(const std::string& what) {
  std::string message = what;
  const char* data = nullptr;
  int flags = 0;
  bool first = true;
  while (unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    message += first ? ": " : "; ";
    first = false;
    const char* reason = ERR_reason_error_string(code);
    message += reason ? reason : "unknown OpenSSL error";
    if ((flags & ERR_TXT_STRING) && data && *data) {
      message += " (";
      message += data;
      message += ")";
    }
  }
  return Error{message};
}

BioPtr MemoryBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  if (length <= 0 || !data) return {};
  return std::string(data, static_cast<size_t>(length));
}

Result<std::vector<X509Ptr>> ParseCertificateChainPem(std::string_view pem) {
  if (pem.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return Error{"certificate PEM is too large"};
  }
  ERR_clear_error();
  BioPtr bio = MemoryBio(pem);
  if (!bio) return OpenSslError("cannot read certificate PEM");
  std::vector<X509Ptr> certificates;
  for (;;) {
    X509Ptr certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!certificate) break;
    certificates.push_back(std::move(certificate));
  }
  // Running out of PEM blocks ends the loop with "no start line"; any other
  // reason means a block was damaged.
  unsigned long last = ERR_peek_last_error();
  bool clean_end = ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  if (!clean_end) return OpenSslError("certificate PEM is damaged");
  ERR_clear_error();
  if (certificates.empty()) return Error{"no PEM certificate found (expected BEGIN CERTIFICATE)"};
  return certificates;
}

Result<X509Ptr> ParseCertificatePem(std::string_view pem) {
  auto certificates = ParseCertificateChainPem(pem);
  if (!certificates.ok()) return certificates.error();
  if (certificates->size() != 1) {
    return Error{"expected one PEM certificate, found " + std::to_string(certificates->size())};
  }
  return std::move(certificates->front());
}

std::string CertificateToPem(X509* certificate) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), certificate) != 1) return {};
  return BioContents(bio.get());
}

std::string SerialHex(const ASN1_INTEGER* serial) {
  BignumPtr number(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!number) return {};
  char* hex = BN_bn2hex(number.get());
  if (!hex) return {};
  std::string text(hex);
  OPENSSL_free(hex);
  return text;
}

Result<std::string> NormalizeSerialHex(std::string_view hex) {
  if (hex.empty()) return Error{"empty serial number"};
  std::string_view digits = hex;
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  if (digits.size() > kMaxSerialHexDigits) {
    return Error{"serial number " + std::string(hex) + " is longer than 20 octets"};
  }
  for (char c : digits) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return Error{"serial number " + std::string(hex) + " is not hexadecimal"};
    }
  }
  BIGNUM* raw = nullptr;
  std::string copy(digits);
  if (BN_hex2bn(&raw, copy.c_str()) != static_cast<int>(copy.size())) {
    BN_free(raw);
    return OpenSslError("cannot parse serial number " + std::string(hex));
  }
  BignumPtr number(raw);
  if (BN_is_zero(number.get())) return Error{"serial number must not be zero"};
  char* text = BN_bn2hex(number.get());
  if (!text) return OpenSslError("cannot print serial number");
  std::string normalized(text);
  OPENSSL_free(text);
  return normalized;
}

Result<Asn1IntegerPtr> SerialFromHex(std::string_view hex) {
  auto normalized = NormalizeSerialHex(hex);
  if (!normalized.ok()) return normalized.error();
  BIGNUM* raw = nullptr;
  BN_hex2bn(&raw, normalized->c_str());
  BignumPtr number(raw);
  Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(number.get(), nullptr));
  if (!serial) return OpenSslError("cannot encode serial number " + *normalized);
  return serial;
}

Result<Asn1TimePtr> ToAsn1Time(TimePoint time) {
  std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  Asn1TimePtr asn1(ASN1_TIME_set(nullptr, seconds));
  if (!asn1) return OpenSslError("cannot encode time");
  return asn1;
}

Result<TimePoint> FromAsn1Time(const ASN1_TIME* time) {
  std::tm parts{};
  if (!time || ASN1_TIME_to_tm(time, &parts) != 1) return OpenSslError("cannot decode time");
  return std::chrono::system_clock::from_time_t(::timegm(&parts));
}

Result<std::string> NameField(const X509_NAME* name, int nid) {
  const char* field = OBJ_nid2sn(nid);
  int index = X509_NAME_get_index_by_NID(name, nid, -1);
  if (index < 0) return std::string();
  if (X509_NAME_get_index_by_NID(name, nid, index) >= 0) {
    return Error{std::string("name has more than one ") + field};
  }
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) return OpenSslError(std::string("name field ") + field + " is not valid text");
  std::string text(reinterpret_cast<char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  if (text.find('\0') != std::string::npos) {
    return Error{std::string("name field ") + field + " contains a NUL byte"};
  }
  return text;
}

}  // namespace custos::crypto
