// Builds a batch of events as the channel's JSON text (see batch_writer.h).
#include "bench/fleet/batch_writer.h"

#include <chrono>

#include "bench/fleet/support.h"

namespace custos::fleetbench {

std::string BatchWriter::Build(std::uint64_t batch, std::uint64_t first_seq,
                               std::size_t count) const {
  auto now = std::chrono::system_clock::now();
  std::string timestamp = EveTimestamp(now);
  std::string sent_us = std::to_string(
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count());
  std::string text;
  text.reserve(count * (pad_.size() + 200) + 64);
  text += R"({"type":"events","batch":)";
  text += std::to_string(batch);
  text += R"(,"events":[)";
  for (std::size_t i = 0; i < count; ++i) {
    std::string seq = std::to_string(first_seq + i);
    if (i > 0) text += ',';
    text += R"({"seq":)";
    text += seq;
    text += R"(,"topic":"alert","instrument":"bench","event":"{\"timestamp\":\")";
    text += timestamp;
    text += R"(\",\"event_type\":\"bench\",\"seq\":)";
    text += seq;
    text += R"(,\"sent_us\":)";
    text += sent_us;
    text += R"(,\"pad\":\")";
    text += pad_;
    text += R"(\"}"})";
  }
  text += "]}";
  return text;
}

}  // namespace custos::fleetbench
