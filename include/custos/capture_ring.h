// Instrument SDK: the capture ring, the fast path for instruments in network
// mode `ring`. The capture engine copies each frame once into shared memory
// that the instrument maps read-only; the instrument needs no socket to read
// it. sensord hands over two descriptors (named by CUSTOS_RING_FD and
// CUSTOS_RING_CURSOR_FD) and the instrument's capture filter, if it has one
// (CUSTOS_CAPTURE_FILTER). A reader that falls a whole ring behind loses the
// oldest frames and counts them; the engine never waits for it on a live wire.
// One CaptureRing per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "custos/result.h"

namespace custos {

struct RingPacket {
  std::uint64_t timestamp_us = 0;      // when the engine captured it
  std::uint32_t wire_length = 0;       // as on the wire; data may be shorter
  std::span<const std::uint8_t> data;  // valid until the next call to Next()
};

struct RingCounters {
  std::uint64_t delivered = 0;  // frames read (including filtered ones)
  std::uint64_t dropped = 0;    // overwritten before they were read
  std::uint64_t filtered = 0;   // refused by the capture filter
};

class CaptureRing {
 public:
  // Attaches to the ring sensord handed this instrument.
  static Result<CaptureRing> Open();
  // Attaches to a ring given by descriptors, with an optional filter.
  static Result<CaptureRing> Attach(int ring_fd, int cursor_fd, const std::string& filter);
  CaptureRing(CaptureRing&&) noexcept;
  CaptureRing& operator=(CaptureRing&&) noexcept;
  ~CaptureRing();

  // The next frame that passes the filter, waiting up to `timeout_ms` for
  // one; false when none came (or a stop signal interrupted the wait).
  bool Next(RingPacket& packet, int timeout_ms);
  RingCounters counters() const;

 private:
  struct State;
  explicit CaptureRing(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace custos
