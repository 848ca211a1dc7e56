// Keeps the fleet's CRL in step with the store: Publish signs a CRL naming
// every revoked serial the store holds, writes it to DIR/crl.pem and swaps
// it into the running channel TLS context (RevocationList::Update), so the
// next handshake sees it. The store is the truth: a crash between revoking
// in the store and publishing is repaired by the Publish at start. A CRL
// must be re-signed before its nextUpdate or every sensor is refused, so the
// server calls RefreshIfDue periodically. Thread-safe: Publish is serialized
// so CRL numbers only grow.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>

#include "common/result.h"
#include "crypto/authority.h"
#include "crypto/revocation.h"
#include "fleet/fleet_store.h"

namespace custos::fleet {

// A CRL naming every serial the store lists as revoked, valid from `now`.
Result<std::string> SignStoreCrl(FleetStore& store, const crypto::IssuingAuthority& authority,
                                 const crypto::CrlTimes& times);

class CrlPublisher {
 public:
  CrlPublisher(FleetStore& store, const crypto::IssuingAuthority& authority,
               std::shared_ptr<crypto::RevocationList> revocations, std::filesystem::path crl_file,
               std::chrono::seconds validity)
      : store_(store),
        authority_(authority),
        revocations_(std::move(revocations)),
        crl_file_(std::move(crl_file)),
        validity_(validity) {}

  Status Publish();
  // Publishes when less than half the validity is left.
  Status RefreshIfDue();

 private:
  FleetStore& store_;
  const crypto::IssuingAuthority& authority_;
  const std::shared_ptr<crypto::RevocationList> revocations_;
  const std::filesystem::path crl_file_;
  const std::chrono::seconds validity_;
  std::mutex mutex_;
};

}  // namespace custos::fleet
