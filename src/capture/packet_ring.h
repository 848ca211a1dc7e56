// The capture engine's shared-memory fast path: a ring of fixed-size slots in
// a memfd that the engine writes once per frame and any number of consumers
// read. The engine seals the memfd against writes after mapping it, so a
// consumer can only map it read-only; each consumer records where it is in a
// one-page cursor memfd of its own, which the engine and sensord read for
// counters and, when replaying a file, for back-pressure.
//
// Every slot is a seqlock: its sequence word is 0 while the engine writes it
// and frame number + 1 once complete. A reader copies a frame out and checks
// the word again, so a frame overwritten while being read is counted as lost,
// never handed over torn. A consumer that falls more than a ring behind loses
// the oldest frames and counts them; it never slows the live capture.
//
// RingWriter belongs to one thread of the engine, RingReader to one thread of
// a consumer; the memory they share is only touched through atomics.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace custos::capture {

inline constexpr std::uint64_t kRingMagic = 0x31676e6972737563;  // "custring1"
inline constexpr std::size_t kRingPage = 4096;
inline constexpr std::size_t kSlotHeaderBytes = 32;
// Slot counts and sizes a ring may have: bounds both ends check.
inline constexpr std::uint64_t kMaxSlots = 1u << 20;
inline constexpr std::uint32_t kMinSlotBytes = 128;
inline constexpr std::uint32_t kMaxSlotBytes = 65536 + kSlotHeaderBytes;
// How many cursor pages (consumers) one ring serves.
inline constexpr int kRingConsumers = 16;
// memfd names sensord looks for in the engine's descriptor table.
inline constexpr const char* kRingMemfdName = "custos-ring";
inline constexpr const char* kCursorMemfdPrefix = "custos-cursor-";

struct RingHeader {
  std::uint64_t magic;
  std::uint32_t slot_bytes;  // header + frame bytes, a multiple of 64
  std::uint32_t reserved;
  std::uint64_t slot_count;                          // a power of two
  alignas(64) std::atomic<std::uint64_t> write_seq;  // frames published so far
  alignas(64) std::atomic<std::uint32_t> wake;       // futex word, bumped to wake sleepers
};

struct SlotHeader {
  std::atomic<std::uint64_t> seq;  // frame number + 1 when complete, 0 while written
  std::uint64_t timestamp_us;
  std::uint32_t captured;  // bytes stored in the slot
  std::uint32_t wire_length;
  std::uint64_t reserved;
};
static_assert(sizeof(SlotHeader) == kSlotHeaderBytes);

// Written by its consumer only. Counters are the consumer's own.
struct CursorPage {
  std::atomic<std::uint32_t> attached;  // 1 while a reader holds it
  std::atomic<std::uint32_t> sleeping;  // 1 while the reader waits on the futex
  std::atomic<std::uint64_t> read_seq;  // next frame it will read
  std::atomic<std::uint64_t> delivered;
  std::atomic<std::uint64_t> dropped;   // overwritten before it read them
  std::atomic<std::uint64_t> filtered;  // refused by its own BPF filter
};

// Checks that `fd` is a ring memfd nobody can write through a new mapping:
// sealed against writes, growth, shrinking and further sealing.
Status CheckRingSeals(int fd);
// Checks that `fd` is one page that cannot shrink or grow.
Status CheckCursorSeals(int fd);

class RingWriter {
 public:
  // Creates, maps and seals the ring memfd and `consumers` cursor memfds.
  static Result<RingWriter> Create(std::uint64_t slot_count, std::uint32_t slot_bytes,
                                   int consumers = kRingConsumers);
  RingWriter(RingWriter&& other) noexcept;
  RingWriter& operator=(RingWriter&&) = delete;
  ~RingWriter();

  // Copies one frame into the next slot (truncated to the slot) and publishes it.
  // Returns false when the frame had to be truncated.
  bool Write(std::span<const std::uint8_t> frame, std::uint32_t wire_length,
             std::uint64_t timestamp_us);
  // Wakes consumers sleeping on the ring; call after a batch of writes.
  void WakeSleepers();
  // Waits until every attached consumer has read enough to free the next
  // slot, up to `timeout_ms`; false when one is still behind.
  bool WaitForRoom(int timeout_ms);
  // True when every attached consumer has read everything written.
  bool Drained() const;

  std::uint64_t written() const { return next_seq_; }
  std::uint32_t frame_capacity() const { return slot_bytes_ - kSlotHeaderBytes; }
  int ring_fd() const { return ring_fd_.get(); }
  const CursorPage& cursor(int index) const { return *cursors_[index]; }
  int cursor_fd(int index) const { return cursor_fds_[index].get(); }
  int consumers() const { return static_cast<int>(cursors_.size()); }

 private:
  RingWriter() = default;
  SlotHeader* Slot(std::uint64_t seq) const;

  UniqueFd ring_fd_;
  std::vector<UniqueFd> cursor_fds_;
  std::vector<CursorPage*> cursors_;
  std::vector<bool> lagging_;  // consumers WaitForRoom gave up on
  RingHeader* header_ = nullptr;
  std::size_t mapped_bytes_ = 0;
  std::uint64_t slot_count_ = 0;
  std::uint32_t slot_bytes_ = 0;
  std::uint64_t next_seq_ = 0;
};

struct RingFrame {
  std::uint64_t timestamp_us = 0;
  std::uint32_t wire_length = 0;
  std::span<const std::uint8_t> data;  // valid until the next call to Next()
};

class RingReader {
 public:
  // Maps the ring read-only (after checking its seals) and the cursor page
  // read-write; starts at the newest frame.
  static Result<RingReader> Attach(int ring_fd, int cursor_fd);
  RingReader(RingReader&& other) noexcept;
  RingReader& operator=(RingReader&&) = delete;
  ~RingReader();

  // The next intact frame, copied out of the ring; false when there is none yet.
  bool Next(RingFrame& frame);
  // Sleeps until the engine publishes more, up to `timeout_ms`.
  void Wait(int timeout_ms);
  // Counts a frame the caller refused (its BPF filter).
  void CountFiltered() { cursor_->filtered.fetch_add(1, std::memory_order_relaxed); }

  const CursorPage& cursor() const { return *cursor_; }
  std::uint32_t frame_capacity() const { return slot_bytes_ - kSlotHeaderBytes; }

 private:
  RingReader() = default;

  const RingHeader* header_ = nullptr;
  std::size_t mapped_bytes_ = 0;
  CursorPage* cursor_ = nullptr;
  std::uint64_t slot_count_ = 0;
  std::uint32_t slot_bytes_ = 0;
  std::uint64_t read_seq_ = 0;
  std::vector<std::uint8_t> buffer_;
};

// sensord's handle on a consumer's cursor page: it clears the page before
// handing it to a new consumer and after that consumer stops, and reports it.
class CursorView {
 public:
  static Result<CursorView> Map(int cursor_fd);
  CursorView(CursorView&& other) noexcept;
  CursorView& operator=(CursorView&&) = delete;
  ~CursorView();
  void Reset();
  const CursorPage& page() const { return *page_; }

 private:
  explicit CursorView(CursorPage* page) : page_(page) {}
  CursorPage* page_ = nullptr;
};

}  // namespace custos::capture
