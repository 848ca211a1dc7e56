// Parsing of the human units used in configuration files: durations ("90s",
// "7d") and sizes ("128M", "1G"). Pure functions, safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/result.h"

namespace custos {

// Accepts an integer followed by one of ms, s, m, h, d (e.g. "500ms", "7d").
Result<std::chrono::milliseconds> ParseDuration(const std::string& text);

// Accepts an integer optionally followed by K, M, G or T (powers of 1024).
Result<std::uint64_t> ParseSize(const std::string& text);

std::string FormatDuration(std::chrono::milliseconds duration);

}  // namespace custos
