// Logging for the daemons: spdlog to stderr, one line per event, with the
// component name. Call InitLogging once at start.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace custos {

void InitLogging(const std::string& program, bool verbose);

}  // namespace custos
