// Linux capability names as the OCI runtime spec spells them (CAP_NET_RAW).
#pragma once

#include <string>

namespace custos {

bool IsKnownCapability(const std::string& name);

}  // namespace custos
