#include "capture/packet_ring.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <thread>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

namespace custos::capture {
namespace {

constexpr int kRingSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE;
constexpr int kCursorSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW;

Result<std::size_t> FileSize(int fd) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) return ErrnoError("fstat");
  return static_cast<std::size_t>(info.st_size);
}

Result<void*> MapShared(int fd, std::size_t bytes, int protection) {
  void* address = ::mmap(nullptr, bytes, protection, MAP_SHARED, fd, 0);
  if (address == MAP_FAILED) return ErrnoError("mmap");
  return address;
}

Result<UniqueFd> CreateSealedMemfd(const std::string& name, std::size_t bytes) {
  UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return ErrnoError("memfd_create " + name);
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) return ErrnoError("ftruncate " + name);
  return fd;
}

Status AddSeals(int fd, int seals, const char* what) {
  if (::fcntl(fd, F_ADD_SEALS, seals) != 0) return ErrnoError(std::string("seal ") + what);
  return {};
}

long Futex(std::atomic<std::uint32_t>* word, int operation, std::uint32_t value,
           const timespec* timeout) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), operation, value, timeout,
                   nullptr, 0);
}

bool ValidGeometry(std::uint64_t slot_count, std::uint32_t slot_bytes) {
  return slot_count >= 2 && slot_count <= kMaxSlots && (slot_count & (slot_count - 1)) == 0 &&
         slot_bytes >= kMinSlotBytes && slot_bytes <= kMaxSlotBytes && slot_bytes % 64 == 0;
}

}  // namespace

Status CheckRingSeals(int fd) {
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) return ErrnoError("ring is not a sealable memfd");
  if ((seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) == 0)
    return Error{"ring memfd is not sealed against writes"};
  if ((seals & (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW)) !=
      (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW))
    return Error{"ring memfd may still be resized or resealed"};
  return {};
}

Status CheckCursorSeals(int fd) {
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) return ErrnoError("cursor is not a sealable memfd");
  if ((seals & kCursorSeals) != kCursorSeals)
    return Error{"cursor memfd may still be resized or resealed"};
  auto size = FileSize(fd);
  if (!size) return size.error();
  if (*size != kRingPage) return Error{"cursor memfd is not one page"};
  return {};
}

// --- RingWriter ---

Result<RingWriter> RingWriter::Create(std::uint64_t slot_count, std::uint32_t slot_bytes,
                                      int consumers) {
  if (!ValidGeometry(slot_count, slot_bytes))
    return Error{"ring of " + std::to_string(slot_count) + " slots of " +
                 std::to_string(slot_bytes) +
                 " bytes: slots must be a power of two up to 1048576, slot bytes a multiple of "
                 "64 from 128 to 65568"};
  RingWriter writer;
  writer.slot_count_ = slot_count;
  writer.slot_bytes_ = slot_bytes;
  writer.mapped_bytes_ = kRingPage + slot_count * slot_bytes;
  auto ring = CreateSealedMemfd(kRingMemfdName, writer.mapped_bytes_);
  if (!ring) return ring.error();
  writer.ring_fd_ = std::move(*ring);
  auto mapped = MapShared(writer.ring_fd_.get(), writer.mapped_bytes_, PROT_READ | PROT_WRITE);
  if (!mapped) return mapped.error();
  writer.header_ = static_cast<RingHeader*>(*mapped);
  writer.header_->slot_bytes = slot_bytes;
  writer.header_->slot_count = slot_count;
  writer.header_->magic = kRingMagic;
  // Our mapping stays writable; nobody can make a new writable one.
  CUSTOS_TRY(AddSeals(writer.ring_fd_.get(), kRingSeals, "ring"));
  for (int i = 0; i < consumers; ++i) {
    auto cursor = CreateSealedMemfd(kCursorMemfdPrefix + std::to_string(i), kRingPage);
    if (!cursor) return cursor.error();
    CUSTOS_TRY(AddSeals(cursor->get(), kCursorSeals, "cursor"));
    auto page = MapShared(cursor->get(), kRingPage, PROT_READ);
    if (!page) return page.error();
    writer.cursors_.push_back(static_cast<CursorPage*>(*page));
    writer.cursor_fds_.push_back(std::move(*cursor));
  }
  writer.lagging_.assign(writer.cursors_.size(), false);
  return writer;
}

RingWriter::RingWriter(RingWriter&& other) noexcept
    : ring_fd_(std::move(other.ring_fd_)),
      cursor_fds_(std::move(other.cursor_fds_)),
      cursors_(std::move(other.cursors_)),
      lagging_(std::move(other.lagging_)),
      header_(std::exchange(other.header_, nullptr)),
      mapped_bytes_(other.mapped_bytes_),
      slot_count_(other.slot_count_),
      slot_bytes_(other.slot_bytes_),
      next_seq_(other.next_seq_) {}

RingWriter::~RingWriter() {
  if (header_ != nullptr) ::munmap(header_, mapped_bytes_);
  for (auto* cursor : cursors_) ::munmap(cursor, kRingPage);
}

SlotHeader* RingWriter::Slot(std::uint64_t seq) const {
  auto* base = reinterpret_cast<std::uint8_t*>(header_) + kRingPage;
  return reinterpret_cast<SlotHeader*>(base + (seq & (slot_count_ - 1)) * slot_bytes_);
}

bool RingWriter::Write(std::span<const std::uint8_t> frame, std::uint32_t wire_length,
                       std::uint64_t timestamp_us) {
  SlotHeader* slot = Slot(next_seq_);
  slot->seq.store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  std::size_t stored = std::min<std::size_t>(frame.size(), frame_capacity());
  std::memcpy(reinterpret_cast<std::uint8_t*>(slot) + kSlotHeaderBytes, frame.data(), stored);
  slot->timestamp_us = timestamp_us;
  slot->captured = static_cast<std::uint32_t>(stored);
  slot->wire_length = wire_length;
  slot->seq.store(next_seq_ + 1, std::memory_order_release);
  ++next_seq_;
  header_->write_seq.store(next_seq_, std::memory_order_release);
  return stored == frame.size();
}

void RingWriter::WakeSleepers() {
  // Pairs with the reader's fence between raising `sleeping` and re-reading write_seq.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (const auto* cursor : cursors_) {
    if (cursor->attached.load(std::memory_order_relaxed) != 0 &&
        cursor->sleeping.load(std::memory_order_relaxed) != 0) {
      header_->wake.fetch_add(1, std::memory_order_release);
      Futex(&header_->wake, FUTEX_WAKE, INT_MAX, nullptr);
      return;
    }
  }
}

bool RingWriter::WaitForRoom(int timeout_ms) {
  if (next_seq_ < slot_count_) return true;
  std::uint64_t overwritten = next_seq_ - slot_count_;  // the frame the next write replaces
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    bool room = true;
    for (std::size_t i = 0; i < cursors_.size(); ++i) {
      const auto* cursor = cursors_[i];
      if (cursor->attached.load(std::memory_order_acquire) == 0) continue;
      std::uint64_t read = cursor->read_seq.load(std::memory_order_acquire);
      // A consumer that once stalled us is waited for again only when it has
      // caught up: its cursor is its own to write and may lie.
      if (lagging_[i]) {
        if (read + slot_count_ / 2 >= next_seq_) lagging_[i] = false;
        continue;
      }
      if (read <= overwritten) room = false;
    }
    if (room) return true;
    if (std::chrono::steady_clock::now() >= deadline) break;
    WakeSleepers();
    std::this_thread::yield();
  }
  for (std::size_t i = 0; i < cursors_.size(); ++i) {
    if (cursors_[i]->attached.load(std::memory_order_acquire) != 0 &&
        cursors_[i]->read_seq.load(std::memory_order_acquire) <= overwritten)
      lagging_[i] = true;
  }
  return false;
}

bool RingWriter::Drained() const {
  for (std::size_t i = 0; i < cursors_.size(); ++i) {
    if (lagging_[i] || cursors_[i]->attached.load(std::memory_order_acquire) == 0) continue;
    if (cursors_[i]->read_seq.load(std::memory_order_acquire) < next_seq_) return false;
  }
  return true;
}

// --- RingReader ---

Result<RingReader> RingReader::Attach(int ring_fd, int cursor_fd) {
  CUSTOS_TRY(CheckRingSeals(ring_fd));
  CUSTOS_TRY(CheckCursorSeals(cursor_fd));
  auto size = FileSize(ring_fd);
  if (!size) return size.error();
  if (*size < kRingPage) return Error{"ring memfd is smaller than its header"};
  auto first = MapShared(ring_fd, kRingPage, PROT_READ);
  if (!first) return first.error();
  const auto* probe = static_cast<const RingHeader*>(*first);
  std::uint64_t magic = probe->magic;
  std::uint64_t slot_count = probe->slot_count;
  std::uint32_t slot_bytes = probe->slot_bytes;
  ::munmap(*first, kRingPage);
  if (magic != kRingMagic) return Error{"ring memfd has no ring header"};
  if (!ValidGeometry(slot_count, slot_bytes) || *size != kRingPage + slot_count * slot_bytes)
    return Error{"ring header does not match the memfd's size"};

  RingReader reader;
  reader.slot_count_ = slot_count;
  reader.slot_bytes_ = slot_bytes;
  reader.mapped_bytes_ = *size;
  auto mapped = MapShared(ring_fd, *size, PROT_READ);
  if (!mapped) return mapped.error();
  reader.header_ = static_cast<const RingHeader*>(*mapped);
  auto page = MapShared(cursor_fd, kRingPage, PROT_READ | PROT_WRITE);
  if (!page) return page.error();
  reader.cursor_ = static_cast<CursorPage*>(*page);
  reader.buffer_.resize(reader.frame_capacity());
  reader.read_seq_ = reader.header_->write_seq.load(std::memory_order_acquire);
  reader.cursor_->read_seq.store(reader.read_seq_, std::memory_order_release);
  reader.cursor_->attached.store(1, std::memory_order_release);
  return reader;
}

RingReader::RingReader(RingReader&& other) noexcept
    : header_(std::exchange(other.header_, nullptr)),
      mapped_bytes_(other.mapped_bytes_),
      cursor_(std::exchange(other.cursor_, nullptr)),
      slot_count_(other.slot_count_),
      slot_bytes_(other.slot_bytes_),
      read_seq_(other.read_seq_),
      buffer_(std::move(other.buffer_)) {}

RingReader::~RingReader() {
  if (cursor_ != nullptr) {
    cursor_->attached.store(0, std::memory_order_release);
    ::munmap(cursor_, kRingPage);
  }
  if (header_ != nullptr) ::munmap(const_cast<RingHeader*>(header_), mapped_bytes_);
}

bool RingReader::Next(RingFrame& frame) {
  const auto* base = reinterpret_cast<const std::uint8_t*>(header_) + kRingPage;
  for (;;) {
    std::uint64_t written = header_->write_seq.load(std::memory_order_acquire);
    if (read_seq_ >= written) return false;
    if (written - read_seq_ > slot_count_) {
      // Lapped: skip to half a ring behind the engine, so the next frames are
      // not overwritten while we read them.
      std::uint64_t resume = written - slot_count_ / 2;
      cursor_->dropped.fetch_add(resume - read_seq_, std::memory_order_relaxed);
      read_seq_ = resume;
    }
    const auto* slot =
        reinterpret_cast<const SlotHeader*>(base + (read_seq_ & (slot_count_ - 1)) * slot_bytes_);
    std::uint64_t before = slot->seq.load(std::memory_order_acquire);
    bool intact = before == read_seq_ + 1;
    std::size_t captured = 0;
    if (intact) {
      captured = std::min<std::size_t>(slot->captured, buffer_.size());
      frame.timestamp_us = slot->timestamp_us;
      frame.wire_length = slot->wire_length;
      std::memcpy(buffer_.data(), reinterpret_cast<const std::uint8_t*>(slot) + kSlotHeaderBytes,
                  captured);
      std::atomic_thread_fence(std::memory_order_acquire);
      intact = slot->seq.load(std::memory_order_relaxed) == before;
    }
    ++read_seq_;
    cursor_->read_seq.store(read_seq_, std::memory_order_release);
    if (!intact) {
      cursor_->dropped.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    cursor_->delivered.fetch_add(1, std::memory_order_relaxed);
    frame.data = std::span<const std::uint8_t>(buffer_.data(), captured);
    return true;
  }
}

void RingReader::Wait(int timeout_ms) {
  auto* wake = const_cast<std::atomic<std::uint32_t>*>(&header_->wake);
  std::uint32_t seen = wake->load(std::memory_order_acquire);
  cursor_->sleeping.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (header_->write_seq.load(std::memory_order_acquire) == read_seq_) {
    timespec timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1'000'000L};
    // FUTEX_WAIT only reads the word, so a read-only mapping serves.
    Futex(wake, FUTEX_WAIT, seen, &timeout);
  }
  cursor_->sleeping.store(0, std::memory_order_relaxed);
}

// --- CursorView ---

Result<CursorView> CursorView::Map(int cursor_fd) {
  CUSTOS_TRY(CheckCursorSeals(cursor_fd));
  auto page = MapShared(cursor_fd, kRingPage, PROT_READ | PROT_WRITE);
  if (!page) return page.error();
  return CursorView(static_cast<CursorPage*>(*page));
}

CursorView::CursorView(CursorView&& other) noexcept : page_(std::exchange(other.page_, nullptr)) {}

CursorView::~CursorView() {
  if (page_ != nullptr) ::munmap(page_, kRingPage);
}

void CursorView::Reset() { std::memset(static_cast<void*>(page_), 0, kRingPage); }

}  // namespace custos::capture
