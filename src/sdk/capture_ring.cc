#include "custos/capture_ring.h"

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>

#include "capture/bpf_filter.h"
#include "capture/packet_ring.h"
#include "custos/instrument.h"

namespace custos {

struct CaptureRing::State {
  capture::RingReader reader;
  std::optional<capture::BpfFilter> filter;
};

namespace {

Result<int> DescriptorFromEnvironment(const char* variable) {
  const char* text = std::getenv(variable);
  if (text == nullptr) return Error{std::string(variable) + " is not set: no capture ring"};
  char* end = nullptr;
  long fd = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || fd < 0 || fd > 1024)
    return Error{std::string(variable) + " is not a descriptor number: " + text};
  return static_cast<int>(fd);
}

}  // namespace

CaptureRing::CaptureRing(std::unique_ptr<State> state) : state_(std::move(state)) {}
CaptureRing::CaptureRing(CaptureRing&&) noexcept = default;
CaptureRing& CaptureRing::operator=(CaptureRing&&) noexcept = default;
CaptureRing::~CaptureRing() = default;

Result<CaptureRing> CaptureRing::Open() {
  auto ring_fd = DescriptorFromEnvironment("CUSTOS_RING_FD");
  if (!ring_fd) return ring_fd.error();
  auto cursor_fd = DescriptorFromEnvironment("CUSTOS_RING_CURSOR_FD");
  if (!cursor_fd) return cursor_fd.error();
  const char* filter = std::getenv("CUSTOS_CAPTURE_FILTER");
  return Attach(*ring_fd, *cursor_fd, filter != nullptr ? filter : "");
}

Result<CaptureRing> CaptureRing::Attach(int ring_fd, int cursor_fd, const std::string& filter) {
  auto reader = capture::RingReader::Attach(ring_fd, cursor_fd);
  if (!reader) return Context("capture ring", reader.error());
  auto state = std::make_unique<State>(State{std::move(*reader), std::nullopt});
  if (!filter.empty()) {
    auto compiled = capture::BpfFilter::Compile(filter);
    if (!compiled) return compiled.error();
    state->filter.emplace(std::move(*compiled));
  }
  return CaptureRing(std::move(state));
}

bool CaptureRing::Next(RingPacket& packet, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  capture::RingFrame frame;
  for (;;) {
    while (state_->reader.Next(frame)) {
      if (state_->filter && !state_->filter->Matches(frame.data, frame.wire_length)) {
        state_->reader.CountFiltered();
        continue;
      }
      packet.timestamp_us = frame.timestamp_us;
      packet.wire_length = frame.wire_length;
      packet.data = frame.data;
      return true;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || StopRequested()) return false;
    state_->reader.Wait(static_cast<int>(left.count()));
  }
}

RingCounters CaptureRing::counters() const {
  const auto& cursor = state_->reader.cursor();
  return {cursor.delivered.load(std::memory_order_relaxed),
          cursor.dropped.load(std::memory_order_relaxed),
          cursor.filtered.load(std::memory_order_relaxed)};
}

}  // namespace custos
