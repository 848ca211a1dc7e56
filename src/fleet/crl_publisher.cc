#include "fleet/crl_publisher.h"

#include "common/files.h"
#include "common/log.h"

namespace custos::fleet {

Result<std::string> SignStoreCrl(FleetStore& store, const crypto::IssuingAuthority& authority,
                                 const crypto::CrlTimes& times) {
  auto serials = store.RevokedSerials();
  if (!serials.ok()) return serials.error();
  std::vector<crypto::RevokedCertificate> revoked;
  revoked.reserve(serials->size());
  for (const RevokedSerial& serial : *serials) {
    revoked.push_back({serial.serial, serial.revoked_at});
  }
  return authority.SignCrl(revoked, times);
}

Status CrlPublisher::Publish() {
  std::lock_guard lock(mutex_);
  auto now = std::chrono::system_clock::now();
  crypto::CrlTimes times{now, now + validity_};
  // Numbers must grow even if the clock steps back.
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  times.number = static_cast<std::uint64_t>(millis.count());
  if (auto current = revocations_->Current(); current && current->number() >= times.number) {
    times.number = current->number() + 1;
  }
  auto pem = SignStoreCrl(store_, authority_, times);
  if (!pem.ok()) return Context("publish CRL", pem.error());
  // The running context first: that is what refuses the next handshake.
  if (auto updated = revocations_->Update(*pem, now); !updated.ok()) {
    return Context("publish CRL", updated.error());
  }
  if (auto written = WriteFileAtomic(crl_file_, *pem, 0644); !written.ok()) {
    return Context("publish CRL", written.error());
  }
  spdlog::info("published CRL number {} ({} revoked), valid for {}h", times.number,
               revocations_->Current()->revoked().size(),
               std::chrono::duration_cast<std::chrono::hours>(validity_).count());
  return {};
}

Status CrlPublisher::RefreshIfDue() {
  auto current = revocations_->Current();
  auto now = std::chrono::system_clock::now();
  if (current && current->next_update() - now > validity_ / 2) return {};
  return Publish();
}

}  // namespace custos::fleet
