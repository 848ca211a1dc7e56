#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace custos {

void InitLogging(const std::string& program, bool verbose) {
  auto logger = spdlog::stderr_logger_mt(program);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %n %l: %v");
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace custos
