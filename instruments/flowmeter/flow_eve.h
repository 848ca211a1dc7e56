// Flow records as EVE `flow` events, in Suricata's field names so existing
// tooling reads them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "net/flow_table.h"

namespace custos::flowmeter {

std::string FormatIp(const net::IpAddress& address);
nlohmann::json FlowToEve(const net::FlowRecord& flow);

}  // namespace custos::flowmeter
