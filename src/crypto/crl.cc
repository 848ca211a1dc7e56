#include "crypto/crl.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <map>

#include "crypto/key.h"

namespace custos::crypto {
namespace {

constexpr auto kAllowedClockSkew = std::chrono::minutes(5);
constexpr size_t kMaxCrlPemBytes = 16 * 1024 * 1024;

std::string FormatTime(TimePoint time) {
  std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm parts{};
  ::gmtime_r(&seconds, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

Status AddRevoked(X509_CRL* crl, const std::string& serial_hex, TimePoint revoked_at) {
  auto serial = SerialFromHex(serial_hex);
  if (!serial.ok()) return serial.error();
  auto date = ToAsn1Time(revoked_at);
  if (!date.ok()) return date.error();
  X509RevokedPtr entry(X509_REVOKED_new());
  if (!entry || X509_REVOKED_set_serialNumber(entry.get(), serial->get()) != 1 ||
      X509_REVOKED_set_revocationDate(entry.get(), date->get()) != 1) {
    return OpenSslError("cannot build CRL entry for " + serial_hex);
  }
  if (X509_CRL_add0_revoked(crl, entry.get()) != 1) {
    return OpenSslError("cannot add CRL entry for " + serial_hex);
  }
  entry.release();  // now owned by the CRL
  return {};
}

Status AddCrlExtensions(X509_CRL* crl, X509* issuer, std::uint64_t number) {
  Asn1IntegerPtr crl_number(ASN1_INTEGER_new());
  if (!crl_number || ASN1_INTEGER_set_uint64(crl_number.get(), number) != 1 ||
      X509_CRL_add1_ext_i2d(crl, NID_crl_number, crl_number.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return OpenSslError("cannot add CRL number");
  }
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, nullptr, nullptr, crl, 0);
  X509ExtensionPtr key_id(
      X509V3_EXT_conf_nid(nullptr, &context, NID_authority_key_identifier, "keyid:always"));
  if (!key_id || X509_CRL_add_ext(crl, key_id.get(), -1) != 1) {
    return OpenSslError("cannot add CRL authority key identifier");
  }
  return {};
}

}  // namespace

Result<std::string> BuildCrlPem(X509* issuer, EVP_PKEY* issuer_key,
                                const std::vector<RevokedCertificate>& revoked,
                                const CrlTimes& times) {
  if (times.next_update <= times.this_update) {
    return Error{"CRL nextUpdate must come after thisUpdate"};
  }
  // Normalized serial -> earliest revocation time.
  std::map<std::string, TimePoint> entries;
  for (const RevokedCertificate& certificate : revoked) {
    auto serial = NormalizeSerialHex(certificate.serial_hex);
    if (!serial.ok()) return Context("CRL entry", serial.error());
    auto [it, inserted] = entries.emplace(*serial, certificate.revoked_at);
    if (!inserted && certificate.revoked_at < it->second) it->second = certificate.revoked_at;
  }
  ERR_clear_error();
  X509CrlPtr crl(X509_CRL_new());
  if (!crl) return OpenSslError("cannot allocate CRL");
  auto this_update = ToAsn1Time(times.this_update);
  if (!this_update.ok()) return this_update.error();
  auto next_update = ToAsn1Time(times.next_update);
  if (!next_update.ok()) return next_update.error();
  if (X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer)) != 1 ||
      X509_CRL_set1_lastUpdate(crl.get(), this_update->get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next_update->get()) != 1) {
    return OpenSslError("cannot fill CRL");
  }
  for (const auto& entry : entries) CUSTOS_TRY(AddRevoked(crl.get(), entry.first, entry.second));
  std::uint64_t number = times.number;
  if (number == 0) {
    number = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(times.this_update.time_since_epoch())
            .count());
  }
  CUSTOS_TRY(AddCrlExtensions(crl.get(), issuer, number));
  if (X509_CRL_sort(crl.get()) != 1 ||
      X509_CRL_sign(crl.get(), issuer_key, SigningDigest(issuer_key)) <= 0) {
    return OpenSslError("cannot sign CRL");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl.get()) != 1) {
    return OpenSslError("cannot write CRL PEM");
  }
  return BioContents(bio.get());
}

Result<Crl> Crl::Parse(std::string_view pem, X509* issuer, TimePoint now) {
  if (pem.size() > kMaxCrlPemBytes) return Error{"CRL is larger than 16 MiB"};
  ERR_clear_error();
  BioPtr bio = MemoryBio(pem);
  if (!bio) return OpenSslError("cannot read CRL");
  Crl result;
  result.crl_.reset(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  X509_CRL* crl = result.crl_.get();
  if (!crl) return OpenSslError("CRL is not a valid PEM X509 CRL");
  if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0) {
    return Error{"CRL was issued by another authority"};
  }
  if (!(X509_get_key_usage(issuer) & KU_CRL_SIGN)) {
    return Error{"CRL issuer certificate may not sign CRLs"};
  }
  if (X509_CRL_verify(crl, X509_get0_pubkey(issuer)) != 1) {
    ERR_clear_error();
    return Error{"CRL signature does not verify with the issuing CA's key (tampered or foreign)"};
  }
  auto this_update = FromAsn1Time(X509_CRL_get0_lastUpdate(crl));
  if (!this_update.ok()) return Context("CRL thisUpdate", this_update.error());
  if (!X509_CRL_get0_nextUpdate(crl)) return Error{"CRL has no nextUpdate"};
  auto next_update = FromAsn1Time(X509_CRL_get0_nextUpdate(crl));
  if (!next_update.ok()) return Context("CRL nextUpdate", next_update.error());
  if (*this_update > now + kAllowedClockSkew) {
    return Error{"CRL thisUpdate " + FormatTime(*this_update) + " is in the future"};
  }
  if (*next_update <= now) {
    return Error{"CRL expired at " + FormatTime(*next_update) + " (nextUpdate)"};
  }
  result.this_update_ = *this_update;
  result.next_update_ = *next_update;
  int critical = 0;
  Asn1IntegerPtr number(
      static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, &critical, nullptr)));
  std::uint64_t value = 0;
  if (number && ASN1_INTEGER_get_uint64(&value, number.get()) == 1) result.number_ = value;
  ERR_clear_error();

  STACK_OF(X509_REVOKED)* entries = X509_CRL_get_REVOKED(crl);
  for (int i = 0; i < sk_X509_REVOKED_num(entries); ++i) {
    const X509_REVOKED* entry = sk_X509_REVOKED_value(entries, i);
    auto revoked_at = FromAsn1Time(X509_REVOKED_get0_revocationDate(entry));
    if (!revoked_at.ok()) return Context("CRL entry", revoked_at.error());
    result.revoked_.push_back({SerialHex(X509_REVOKED_get0_serialNumber(entry)), *revoked_at});
  }
  return result;
}

bool Crl::IsRevoked(std::string_view serial_hex) const {
  auto serial = NormalizeSerialHex(serial_hex);
  if (!serial.ok()) return false;
  for (const RevokedCertificate& entry : revoked_) {
    if (entry.serial_hex == *serial) return true;
  }
  return false;
}

std::string Crl::Pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl_.get()) != 1) return {};
  return BioContents(bio.get());
}

}  // namespace custos::crypto
