// The nftables guards that make a passive instrument receive-only: a drop on
// egress of its mirror0 inside its namespace (it holds no CAP_NET_ADMIN to
// lift it), and a counting drop on ingress of the host end, which catches
// what bypasses the first (AF_PACKET with PACKET_QDISC_BYPASS).
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace custos {

inline constexpr const char* kGuardTable = "custos_guard";

// Adds a chain to `table netdev custos_guard` in the given namespace that
// drops everything on hook (ingress or egress) of `device`, counting it.
Status AddDropChain(const std::string& netns_path, const std::string& hook,
                    const std::string& device, const std::string& chain);
Status DeleteChain(const std::string& netns_path, const std::string& chain);
// Packets counted by a drop chain so far.
Result<std::uint64_t> DroppedPackets(const std::string& netns_path, const std::string& chain);

}  // namespace custos
