#include "crypto/verify.h"

#include <openssl/err.h>
#include <openssl/pem.h>

namespace custos::crypto {
namespace {

constexpr size_t kMaxPemBytes = 16 * 1024 * 1024;

}  // namespace

Result<PeerIdentity> SensorIdentityOf(X509* certificate) {
  if (!certificate) return Error{"no peer certificate"};
  const X509_NAME* subject = X509_get_subject_name(certificate);
  auto sensor_id = NameField(subject, NID_commonName);
  if (!sensor_id.ok()) return Context("peer certificate", sensor_id.error());
  auto tenant = NameField(subject, NID_organizationName);
  if (!tenant.ok()) return Context("peer certificate", tenant.error());
  if (sensor_id->empty() || tenant->empty()) {
    return Error{"peer certificate is not a sensor certificate (needs CN and O)"};
  }
  auto not_after = FromAsn1Time(X509_get0_notAfter(certificate));
  if (!not_after.ok()) return not_after.error();
  return PeerIdentity{std::move(*sensor_id), std::move(*tenant),
                      SerialHex(X509_get0_serialNumber(certificate)), *not_after};
}

int VerifyWithCrls(X509_STORE_CTX* context, STACK_OF(X509_CRL) * crls) {
  // The context does not take ownership of `crls`; the caller keeps them
  // alive until X509_verify_cert returns.
  X509_STORE_CTX_set0_crls(context, crls);
  X509_STORE_CTX_set_flags(context, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_X509_STRICT);
  int verified = X509_verify_cert(context);
  X509_STORE_CTX_set0_crls(context, nullptr);
  return verified;
}

std::string VerifyFailureReason(X509_STORE_CTX* context) {
  int error = X509_STORE_CTX_get_error(context);
  std::string reason = X509_verify_cert_error_string(error);
  reason += " (depth ";
  reason += std::to_string(X509_STORE_CTX_get_error_depth(context));
  if (X509* certificate = X509_STORE_CTX_get_current_cert(context)) {
    char* name = X509_NAME_oneline(X509_get_subject_name(certificate), nullptr, 0);
    if (name) {
      reason += ", ";
      reason += name;
      OPENSSL_free(name);
    }
  }
  reason += ")";
  return reason;
}

Result<PeerIdentity> VerifySensorChain(X509* root, const std::vector<X509*>& chain, X509_CRL* crl,
                                       TimePoint now) {
  if (!root || chain.empty() || !chain.front() || !crl) {
    return Error{"verification needs a root, a chain and a CRL"};
  }
  ERR_clear_error();
  X509StorePtr store(X509_STORE_new());
  CertificateStackPtr intermediates(sk_X509_new_null());
  CrlStackPtr crls(sk_X509_CRL_new_null());
  X509StoreContextPtr context(X509_STORE_CTX_new());
  if (!store || !intermediates || !crls || !context ||
      X509_STORE_add_cert(store.get(), root) != 1 || !sk_X509_CRL_push(crls.get(), crl)) {
    return OpenSslError("cannot prepare verification");
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    if (!sk_X509_push(intermediates.get(), chain[i])) return OpenSslError("intermediates");
  }
  if (X509_STORE_CTX_init(context.get(), store.get(), chain.front(), intermediates.get()) != 1 ||
      X509_STORE_CTX_set_purpose(context.get(), X509_PURPOSE_SSL_CLIENT) != 1) {
    return OpenSslError("cannot prepare verification");
  }
  X509_STORE_CTX_set_time(context.get(), 0, std::chrono::system_clock::to_time_t(now));
  if (VerifyWithCrls(context.get(), crls.get()) != 1) {
    ERR_clear_error();
    return Error{"certificate chain refused: " + VerifyFailureReason(context.get())};
  }
  return SensorIdentityOf(chain.front());
}

Result<PeerIdentity> VerifySensorChainPem(std::string_view root_pem, std::string_view chain_pem,
                                          std::string_view crl_pem, TimePoint now) {
  auto root = ParseCertificatePem(root_pem);
  if (!root.ok()) return Context("root", root.error());
  auto chain = ParseCertificateChainPem(chain_pem);
  if (!chain.ok()) return Context("peer chain", chain.error());
  if (crl_pem.size() > kMaxPemBytes) return Error{"CRL is larger than 16 MiB"};
  BioPtr bio = MemoryBio(crl_pem);
  X509CrlPtr crl(bio ? PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!crl) return OpenSslError("CRL is not a valid PEM X509 CRL");
  std::vector<X509*> certificates;
  for (const X509Ptr& certificate : *chain) certificates.push_back(certificate.get());
  return VerifySensorChain(root->get(), certificates, crl.get(), now);
}

}  // namespace custos::crypto
