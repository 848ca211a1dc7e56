#include "crypto/revocation.h"

namespace custos::crypto {

Result<std::shared_ptr<RevocationList>> RevocationList::Create(std::string_view issuer_pem,
                                                               std::string_view crl_pem,
                                                               TimePoint now) {
  auto issuer = ParseCertificatePem(issuer_pem);
  if (!issuer.ok()) return Context("CRL issuer", issuer.error());
  auto crl = Crl::Parse(crl_pem, issuer->get(), now);
  if (!crl.ok()) return crl.error();
  return std::shared_ptr<RevocationList>(
      new RevocationList(std::move(*issuer), std::make_shared<const Crl>(std::move(*crl))));
}

Status RevocationList::Update(std::string_view crl_pem, TimePoint now) {
  auto crl = Crl::Parse(crl_pem, issuer_.get(), now);
  if (!crl.ok()) return crl.error();
  auto replacement = std::make_shared<const Crl>(std::move(*crl));
  std::lock_guard lock(mutex_);
  if (replacement->number() < crl_->number()) {
    return Error{"refusing CRL number " + std::to_string(replacement->number()) +
                 ": older than the one in use (" + std::to_string(crl_->number()) + ")"};
  }
  crl_ = std::move(replacement);
  return {};
}

std::shared_ptr<const Crl> RevocationList::Current() const {
  std::lock_guard lock(mutex_);
  return crl_;
}

bool RevocationList::IsRevoked(std::string_view serial_hex) const {
  return Current()->IsRevoked(serial_hex);
}

}  // namespace custos::crypto
