#include "crypto/authority.h"

#include <openssl/err.h>

#include "common/files.h"
#include "crypto/certificate.h"
#include "crypto/key_file.h"

namespace custos::crypto {
namespace {

constexpr auto kClockSkew = std::chrono::minutes(5);
constexpr size_t kMaxSubjectFieldLength = 64;

Status ValidateSubjectField(const std::string& value, const std::string& what) {
  if (value.empty() || value.size() > kMaxSubjectFieldLength) {
    return Error{what + " must be 1 to 64 characters"};
  }
  if (value.front() == '.' || value.front() == '-') {
    return Error{what + " '" + value + "' must not start with '.' or '-'"};
  }
  for (char c : value) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '-';
    if (!allowed) return Error{what + " '" + value + "' may hold only letters, digits, . _ -"};
  }
  return {};
}

Result<X509Ptr> ReadCertificateFile(const std::filesystem::path& path) {
  auto pem = ReadFile(path);
  if (!pem.ok()) return pem.error();
  auto certificate = ParseCertificatePem(*pem);
  if (!certificate.ok()) return Context(path.string(), certificate.error());
  return certificate;
}

// The issuing certificate must chain to `root` at `now` and be a CA.
Status CheckIssuingChain(X509* issuing, X509* root, TimePoint now) {
  if (!(X509_get_extension_flags(root) & EXFLAG_SS) || X509_check_ca(root) == 0) {
    return Error{"root certificate is not a self-signed CA"};
  }
  if (X509_check_ca(issuing) == 0) return Error{"issuing certificate is not a CA"};
  X509StorePtr store(X509_STORE_new());
  X509StoreContextPtr context(X509_STORE_CTX_new());
  if (!store || !context || X509_STORE_add_cert(store.get(), root) != 1 ||
      X509_STORE_CTX_init(context.get(), store.get(), issuing, nullptr) != 1) {
    return OpenSslError("cannot prepare issuing CA check");
  }
  X509_STORE_CTX_set_time(context.get(), 0, std::chrono::system_clock::to_time_t(now));
  X509_STORE_CTX_set_flags(context.get(), X509_V_FLAG_X509_STRICT);
  if (X509_verify_cert(context.get()) != 1) {
    ERR_clear_error();
    return Error{std::string("issuing certificate does not verify against the root: ") +
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(context.get()))};
  }
  return {};
}

Status WriteCertificateFile(const std::filesystem::path& path, const std::string& pem) {
  return WriteFileAtomic(path, pem, 0644);
}

}  // namespace

AuthorityPaths::AuthorityPaths(const std::filesystem::path& dir)
    : root_key(dir / "root" / "root.key"),
      root_certificate(dir / "root" / "root.crt"),
      issuing_key(dir / "issuing" / "issuing.key"),
      issuing_certificate(dir / "issuing" / "issuing.crt"),
      server_key(dir / "server" / "server.key"),
      server_certificate(dir / "server" / "server.crt"),
      chain(dir / "chain.pem"),
      crl(dir / "crl.pem") {}

Status InitAuthority(const std::filesystem::path& dir, const AuthorityOptions& options) {
  using std::chrono::seconds;
  if (options.server_dns_names.empty() && options.server_ip_addresses.empty()) {
    return Error{"the fleet server certificate needs at least one DNS name or IP address"};
  }
  if (options.root_validity <= seconds(0) || options.issuing_validity > options.root_validity ||
      options.server_validity > options.issuing_validity || options.server_validity <= seconds(0) ||
      options.crl_validity <= seconds(0)) {
    return Error{"validities must be positive and root >= issuing >= server"};
  }
  AuthorityPaths paths(dir);
  for (const auto& existing :
       {paths.root_key, paths.root_certificate, paths.issuing_key, paths.issuing_certificate}) {
    if (std::filesystem::exists(existing)) {
      return Error{"refusing to initialise " + dir.string() + ": it already holds " +
                   existing.string()};
    }
  }
  CUSTOS_TRY(MakeDirectories(dir, 0700));
  CUSTOS_TRY(MakeDirectories(paths.root_key.parent_path(), 0700));
  CUSTOS_TRY(MakeDirectories(paths.issuing_key.parent_path(), 0700));
  CUSTOS_TRY(MakeDirectories(paths.server_key.parent_path(), 0700));

  TimePoint not_before = options.now - kClockSkew;
  auto root_key = KeyPair::Generate(options.algorithm);
  if (!root_key.ok()) return root_key.error();
  CertificateProfile root_profile;
  root_profile.subject = {{NID_commonName, options.name + " Root CA"}};
  root_profile.public_key = root_key->get();
  root_profile.not_before = not_before;
  root_profile.not_after = options.now + options.root_validity;
  root_profile.is_ca = true;
  root_profile.path_length = 1;
  auto root = IssueCertificate(root_profile, nullptr, root_key->get());
  if (!root.ok()) return Context("root CA", root.error());

  auto issuing_key = KeyPair::Generate(options.algorithm);
  if (!issuing_key.ok()) return issuing_key.error();
  CertificateProfile issuing_profile;
  issuing_profile.subject = {{NID_commonName, options.name + " Issuing CA"}};
  issuing_profile.public_key = issuing_key->get();
  issuing_profile.not_before = not_before;
  issuing_profile.not_after = options.now + options.issuing_validity;
  issuing_profile.is_ca = true;
  issuing_profile.path_length = 0;
  auto issuing = IssueCertificate(issuing_profile, root->get(), root_key->get());
  if (!issuing.ok()) return Context("issuing CA", issuing.error());

  std::string root_pem = CertificateToPem(root->get());
  std::string issuing_pem = CertificateToPem(issuing->get());
  CUSTOS_TRY(WritePrivateKeyFile(paths.root_key, *root_key));
  CUSTOS_TRY(WriteCertificateFile(paths.root_certificate, root_pem));
  CUSTOS_TRY(WritePrivateKeyFile(paths.issuing_key, *issuing_key));
  CUSTOS_TRY(WriteCertificateFile(paths.issuing_certificate, issuing_pem));
  CUSTOS_TRY(WriteCertificateFile(paths.chain, issuing_pem + root_pem));

  // From here on the authority works as it will in production: without the
  // root key.
  auto authority = IssuingAuthority::Load(dir, options.now);
  if (!authority.ok()) return Context("loading the new issuing CA", authority.error());
  auto server_key = KeyPair::Generate(options.algorithm);
  if (!server_key.ok()) return server_key.error();
  auto server = authority->IssueServerCertificate(server_key->get(), options.server_dns_names,
                                                  options.server_ip_addresses,
                                                  options.server_validity, options.now);
  if (!server.ok()) return Context("fleet server certificate", server.error());
  CUSTOS_TRY(WritePrivateKeyFile(paths.server_key, *server_key));
  CUSTOS_TRY(WriteCertificateFile(paths.server_certificate, server->certificate_pem));

  auto crl = authority->SignCrl({}, CrlTimes{options.now, options.now + options.crl_validity});
  if (!crl.ok()) return Context("initial CRL", crl.error());
  return WriteCertificateFile(paths.crl, *crl);
}

IssuingAuthority::IssuingAuthority(KeyPair key, X509Ptr certificate, X509Ptr root)
    : key_(std::move(key)), certificate_(std::move(certificate)), root_(std::move(root)) {
  root_pem_ = CertificateToPem(root_.get());
  chain_pem_ = CertificateToPem(certificate_.get()) + root_pem_;
}

Result<IssuingAuthority> IssuingAuthority::Load(const std::filesystem::path& dir, TimePoint now) {
  AuthorityPaths paths(dir);
  auto key = ReadPrivateKeyFile(paths.issuing_key);
  if (!key.ok()) return key.error();
  auto certificate = ReadCertificateFile(paths.issuing_certificate);
  if (!certificate.ok()) return certificate.error();
  auto root = ReadCertificateFile(paths.root_certificate);
  if (!root.ok()) return root.error();
  if (X509_check_private_key(certificate->get(), key->get()) != 1) {
    ERR_clear_error();
    return Error{paths.issuing_key.string() + " does not match " +
                 paths.issuing_certificate.string()};
  }
  CUSTOS_TRY(CheckIssuingChain(certificate->get(), root->get(), now));
  return IssuingAuthority(std::move(*key), std::move(*certificate), std::move(*root));
}

Result<IssuedCertificate> IssuingAuthority::Issue(CertificateProfile profile,
                                                  std::chrono::seconds validity,
                                                  TimePoint now) const {
  if (validity <= std::chrono::seconds(0)) return Error{"validity must be positive"};
  // Certificates hold whole seconds; the returned times match them exactly.
  now = std::chrono::floor<std::chrono::seconds>(now);
  profile.not_before = now - kClockSkew;
  profile.not_after = now + validity;
  auto issuer_end = FromAsn1Time(X509_get0_notAfter(certificate_.get()));
  if (!issuer_end.ok()) return issuer_end.error();
  if (profile.not_after > *issuer_end) {
    return Error{"requested validity ends after the issuing CA expires"};
  }
  auto certificate = IssueCertificate(profile, certificate_.get(), key_.get());
  if (!certificate.ok()) return certificate.error();
  return IssuedCertificate{CertificateToPem(certificate->get()), chain_pem_,
                           SerialHex(X509_get0_serialNumber(certificate->get())),
                           profile.not_before, profile.not_after};
}

Result<IssuedCertificate> IssuingAuthority::SignSensorCsr(const Csr& csr,
                                                          const SensorSubject& subject,
                                                          std::chrono::seconds validity,
                                                          TimePoint now) const {
  CUSTOS_TRY(ValidateSubjectField(subject.sensor_id, "sensor id"));
  CUSTOS_TRY(ValidateSubjectField(subject.tenant, "tenant"));
  CUSTOS_TRY(CheckAcceptableKey(csr.public_key(), "CSR public key"));
  CertificateProfile profile;
  profile.subject = {{NID_organizationName, subject.tenant}, {NID_commonName, subject.sensor_id}};
  profile.public_key = csr.public_key();
  profile.client_auth = true;
  return Issue(std::move(profile), validity, now);
}

Result<IssuedCertificate> IssuingAuthority::IssueServerCertificate(
    EVP_PKEY* public_key, const std::vector<std::string>& dns_names,
    const std::vector<std::string>& ip_addresses, std::chrono::seconds validity,
    TimePoint now) const {
  if (dns_names.empty() && ip_addresses.empty()) {
    return Error{"a server certificate needs at least one DNS name or IP address"};
  }
  CUSTOS_TRY(CheckAcceptableKey(public_key, "server public key"));
  // Clients match the subjectAltNames; the common name is only a label.
  std::string label = !dns_names.empty() ? dns_names.front() : ip_addresses.front();
  if (label.size() > kMaxSubjectFieldLength) label = "custos-fleet";
  CertificateProfile profile;
  profile.subject = {{NID_commonName, label}};
  profile.public_key = public_key;
  profile.server_auth = true;
  profile.dns_names = dns_names;
  profile.ip_addresses = ip_addresses;
  return Issue(std::move(profile), validity, now);
}

Result<std::string> IssuingAuthority::SignCrl(const std::vector<RevokedCertificate>& revoked,
                                              const CrlTimes& times) const {
  return BuildCrlPem(certificate_.get(), key_.get(), revoked, times);
}

Result<Crl> IssuingAuthority::ParseCrl(std::string_view pem, TimePoint now) const {
  return Crl::Parse(pem, certificate_.get(), now);
}

}  // namespace custos::crypto
