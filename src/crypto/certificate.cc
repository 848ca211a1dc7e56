#include "crypto/certificate.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cctype>

#include "crypto/key.h"

namespace custos::crypto {
namespace {

constexpr int kSerialBytes = 16;
constexpr size_t kMaxDnsNameLength = 253;

// Adds one extension written in OpenSSL's configuration syntax. Values come
// from constants in this file, never from callers, so nothing can inject
// extra clauses.
Status AddExtension(X509* certificate, X509V3_CTX* context, int nid, const std::string& value) {
  X509ExtensionPtr extension(X509V3_EXT_conf_nid(nullptr, context, nid, value.c_str()));
  if (!extension || X509_add_ext(certificate, extension.get(), -1) != 1) {
    return OpenSslError(std::string("cannot add extension ") + OBJ_nid2sn(nid));
  }
  return {};
}

Status AddSubjectAltNames(X509* certificate, const CertificateProfile& profile) {
  if (profile.dns_names.empty() && profile.ip_addresses.empty()) return {};
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) return OpenSslError("cannot allocate subjectAltName");
  for (const std::string& dns : profile.dns_names) {
    if (!IsValidDnsName(dns)) return Error{"invalid DNS name for subjectAltName: '" + dns + "'"};
    GENERAL_NAME* name = GENERAL_NAME_new();
    ASN1_IA5STRING* text = ASN1_IA5STRING_new();
    if (!name || !text || ASN1_STRING_set(text, dns.data(), static_cast<int>(dns.size())) != 1) {
      GENERAL_NAME_free(name);
      ASN1_IA5STRING_free(text);
      return OpenSslError("cannot encode DNS name " + dns);
    }
    GENERAL_NAME_set0_value(name, GEN_DNS, text);
    if (!sk_GENERAL_NAME_push(names.get(), name)) {
      GENERAL_NAME_free(name);
      return OpenSslError("cannot encode DNS name " + dns);
    }
  }
  for (const std::string& ip : profile.ip_addresses) {
    ASN1_OCTET_STRING* address = a2i_IPADDRESS(ip.c_str());
    if (!address) {
      ERR_clear_error();
      return Error{"invalid IP address for subjectAltName: '" + ip + "'"};
    }
    GENERAL_NAME* name = GENERAL_NAME_new();
    if (!name) {
      ASN1_OCTET_STRING_free(address);
      return OpenSslError("cannot encode IP address " + ip);
    }
    GENERAL_NAME_set0_value(name, GEN_IPADD, address);
    if (!sk_GENERAL_NAME_push(names.get(), name)) {
      GENERAL_NAME_free(name);
      return OpenSslError("cannot encode IP address " + ip);
    }
  }
  if (X509_add1_ext_i2d(certificate, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) !=
      1) {
    return OpenSslError("cannot add subjectAltName");
  }
  return {};
}

Status AddExtensions(X509* certificate, X509* issuer, const CertificateProfile& profile) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer ? issuer : certificate, certificate, nullptr, nullptr, 0);
  if (profile.is_ca) {
    std::string constraints = "critical,CA:TRUE";
    if (profile.path_length >= 0) {
      constraints += ",pathlen:";
      constraints += std::to_string(profile.path_length);
    }
    CUSTOS_TRY(AddExtension(certificate, &context, NID_basic_constraints, constraints));
    CUSTOS_TRY(AddExtension(certificate, &context, NID_key_usage, "critical,keyCertSign,cRLSign"));
  } else {
    CUSTOS_TRY(AddExtension(certificate, &context, NID_basic_constraints, "critical,CA:FALSE"));
    CUSTOS_TRY(AddExtension(certificate, &context, NID_key_usage, "critical,digitalSignature"));
  }
  std::string usages;
  if (profile.server_auth) usages = "serverAuth";
  if (profile.client_auth) usages += usages.empty() ? "clientAuth" : ",clientAuth";
  if (!usages.empty()) {
    CUSTOS_TRY(AddExtension(certificate, &context, NID_ext_key_usage, usages));
  }
  CUSTOS_TRY(AddExtension(certificate, &context, NID_subject_key_identifier, "hash"));
  // A root's own key identifies it; RFC 5280 lets it omit the authority one.
  if (issuer) {
    CUSTOS_TRY(AddExtension(certificate, &context, NID_authority_key_identifier, "keyid:always"));
  }
  return AddSubjectAltNames(certificate, profile);
}

}  // namespace

bool IsValidDnsName(std::string_view name) {
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > kMaxDnsNameLength) return false;
  if (name.front() == '.' || name.back() == '.' || name.find("..") != std::string_view::npos) {
    return false;
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return true;
}

Result<Asn1IntegerPtr> RandomSerial() {
  unsigned char bytes[kSerialBytes];
  BignumPtr number(BN_new());
  if (!number) return OpenSslError("cannot allocate serial");
  do {
    if (RAND_bytes(bytes, sizeof bytes) != 1) return OpenSslError("RAND_bytes");
    if (!BN_bin2bn(bytes, sizeof bytes, number.get())) return OpenSslError("serial");
  } while (BN_is_zero(number.get()));
  Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(number.get(), nullptr));
  if (!serial) return OpenSslError("cannot encode serial");
  return serial;
}

Result<X509Ptr> IssueCertificate(const CertificateProfile& profile, X509* issuer,
                                 EVP_PKEY* issuer_key) {
  if (!profile.public_key || !issuer_key) return Error{"certificate needs a key and a signer"};
  if (profile.subject.empty()) return Error{"certificate needs a subject"};
  if (profile.not_after <= profile.not_before) {
    return Error{"certificate validity must end after it starts"};
  }
  ERR_clear_error();
  X509Ptr certificate(X509_new());
  if (!certificate) return OpenSslError("cannot allocate certificate");
  auto serial = RandomSerial();
  if (!serial.ok()) return serial.error();
  auto not_before = ToAsn1Time(profile.not_before);
  if (!not_before.ok()) return not_before.error();
  auto not_after = ToAsn1Time(profile.not_after);
  if (!not_after.ok()) return not_after.error();

  X509NamePtr subject(X509_NAME_new());
  if (!subject) return OpenSslError("cannot allocate subject");
  for (const auto& field : profile.subject) {
    const std::string& value = field.second;
    if (X509_NAME_add_entry_by_NID(subject.get(), field.first, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1) {
      return OpenSslError(std::string("cannot set subject ") + OBJ_nid2sn(field.first));
    }
  }
  X509_NAME* issuer_name = issuer ? X509_get_subject_name(issuer) : subject.get();
  if (X509_set_version(certificate.get(), X509_VERSION_3) != 1 ||
      X509_set_serialNumber(certificate.get(), serial->get()) != 1 ||
      X509_set1_notBefore(certificate.get(), not_before->get()) != 1 ||
      X509_set1_notAfter(certificate.get(), not_after->get()) != 1 ||
      X509_set_subject_name(certificate.get(), subject.get()) != 1 ||
      X509_set_issuer_name(certificate.get(), issuer_name) != 1 ||
      X509_set_pubkey(certificate.get(), profile.public_key) != 1) {
    return OpenSslError("cannot fill certificate");
  }
  CUSTOS_TRY(AddExtensions(certificate.get(), issuer, profile));
  if (X509_sign(certificate.get(), issuer_key, SigningDigest(issuer_key)) <= 0) {
    return OpenSslError("cannot sign certificate");
  }
  return certificate;
}

Result<std::string> CertificateSha256Hex(X509* certificate) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(certificate, EVP_sha256(), digest, &length) != 1) {
    return OpenSslError("cannot hash a certificate");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xF];
  }
  return hex;
}

}  // namespace custos::crypto
