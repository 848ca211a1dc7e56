#include "capture/packet_ring.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace custos::capture {
namespace {

// Frame `n`: every byte is n's low byte, length 60 + n % 1000, first 8 bytes n.
std::vector<std::uint8_t> FrameFor(std::uint64_t n) {
  std::vector<std::uint8_t> frame(60 + n % 1000, static_cast<std::uint8_t>(n));
  std::memcpy(frame.data(), &n, sizeof n);
  return frame;
}

bool Matches(std::span<const std::uint8_t> data, std::uint64_t* number) {
  if (data.size() < 60) return false;
  std::uint64_t n;
  std::memcpy(&n, data.data(), sizeof n);
  if (data.size() != 60 + n % 1000) return false;
  for (std::size_t i = 8; i < data.size(); ++i)
    if (data[i] != static_cast<std::uint8_t>(n)) return false;
  *number = n;
  return true;
}

TEST(PacketRing, ReaderSeesEveryFrameInOrder) {
  auto writer = RingWriter::Create(64, 2048, 2);
  ASSERT_TRUE(writer) << writer.error().message;
  auto reader = RingReader::Attach(writer->ring_fd(), writer->cursor_fd(0));
  ASSERT_TRUE(reader) << reader.error().message;
  RingFrame frame;
  for (std::uint64_t n = 0; n < 50; ++n) {
    ASSERT_TRUE(writer->Write(FrameFor(n), static_cast<std::uint32_t>(FrameFor(n).size()), n));
    ASSERT_TRUE(reader->Next(frame));
    std::uint64_t seen = 0;
    ASSERT_TRUE(Matches(frame.data, &seen));
    EXPECT_EQ(seen, n);
    EXPECT_EQ(frame.timestamp_us, n);
  }
  EXPECT_FALSE(reader->Next(frame));
  EXPECT_EQ(writer->cursor(0).delivered.load(), 50u);
  EXPECT_EQ(writer->cursor(0).dropped.load(), 0u);
  EXPECT_TRUE(writer->Drained());
}

TEST(PacketRing, LongFramesAreTruncatedToTheSlot) {
  auto writer = RingWriter::Create(4, 128, 1);
  ASSERT_TRUE(writer);
  auto reader = RingReader::Attach(writer->ring_fd(), writer->cursor_fd(0));
  ASSERT_TRUE(reader);
  std::vector<std::uint8_t> big(1500, 7);
  EXPECT_FALSE(writer->Write(big, 1500, 0));
  RingFrame frame;
  ASSERT_TRUE(reader->Next(frame));
  EXPECT_EQ(frame.data.size(), 128 - kSlotHeaderBytes);
  EXPECT_EQ(frame.wire_length, 1500u);
}

TEST(PacketRing, ALappedReaderCountsWhatItLostAndGetsOnlyIntactFrames) {
  auto writer = RingWriter::Create(16, 2048, 1);
  ASSERT_TRUE(writer);
  auto reader = RingReader::Attach(writer->ring_fd(), writer->cursor_fd(0));
  ASSERT_TRUE(reader);
  for (std::uint64_t n = 0; n < 100; ++n) writer->Write(FrameFor(n), 0, 0);
  RingFrame frame;
  std::uint64_t last = 0;
  std::uint64_t delivered = 0;
  while (reader->Next(frame)) {
    ASSERT_TRUE(Matches(frame.data, &last));
    ++delivered;
  }
  EXPECT_EQ(last, 99u);
  EXPECT_EQ(delivered + reader->cursor().dropped.load(), 100u);
  EXPECT_GT(reader->cursor().dropped.load(), 0u);
}

TEST(PacketRing, AConsumerCannotWriteTheRing) {
  auto writer = RingWriter::Create(16, 2048, 1);
  ASSERT_TRUE(writer);
  int fd = writer->ring_fd();
  EXPECT_EQ(::mmap(nullptr, kRingPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
  EXPECT_EQ(errno, EPERM);
  // Re-opening the memfd through /proc gives a new, writable open file; the
  // seal is on the file itself, so that is refused too.
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  UniqueFd reopened(::open(path.c_str(), O_RDWR));
  ASSERT_TRUE(reopened.valid());
  EXPECT_EQ(::mmap(nullptr, kRingPage, PROT_READ | PROT_WRITE, MAP_SHARED, reopened.get(), 0),
            MAP_FAILED);
  EXPECT_EQ(::write(reopened.get(), "x", 1), -1);
  EXPECT_EQ(::ftruncate(reopened.get(), 0), -1);
  EXPECT_EQ(::fcntl(fd, F_ADD_SEALS, 0), -1);  // sealed against resealing (and unsealing)
  // A read-only mapping cannot be turned writable.
  void* view = ::mmap(nullptr, kRingPage, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(view, MAP_FAILED);
  EXPECT_NE(::mprotect(view, kRingPage, PROT_READ | PROT_WRITE), 0);
  ::munmap(view, kRingPage);
  // And the cursor page cannot be shrunk under the engine.
  EXPECT_EQ(::ftruncate(writer->cursor_fd(0), 0), -1);
}

TEST(PacketRing, AttachRefusesAnUnsealedOrForeignMemfd) {
  UniqueFd plain(::memfd_create("plain", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(plain.get(), 1 << 20), 0);
  auto writer = RingWriter::Create(16, 2048, 1);
  ASSERT_TRUE(writer);
  auto unsealed = RingReader::Attach(plain.get(), writer->cursor_fd(0));
  ASSERT_FALSE(unsealed);
  EXPECT_NE(unsealed.error().message.find("not sealed against writes"), std::string::npos);
  // Sealed, but no ring inside.
  ASSERT_EQ(
      ::fcntl(plain.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
      0);
  auto foreign = RingReader::Attach(plain.get(), writer->cursor_fd(0));
  ASSERT_FALSE(foreign);
  EXPECT_NE(foreign.error().message.find("no ring header"), std::string::npos);
  // A cursor that could be resized is refused.
  UniqueFd loose(::memfd_create("loose", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(loose.get(), kRingPage), 0);
  EXPECT_FALSE(RingReader::Attach(writer->ring_fd(), loose.get()));
}

// A consumer in another process, reading while the engine writes: every
// frame it gets is whole, and delivered + dropped covers every frame.
void ReadInChild(int ring_fd, int cursor_fd, std::uint64_t total, int report_fd) {
  auto reader = RingReader::Attach(ring_fd, cursor_fd);
  if (!reader) _exit(2);
  ::write(report_fd, "a", 1);
  RingFrame frame;
  std::uint64_t previous = 0;
  bool first = true;
  while (reader->cursor().read_seq.load() < total) {
    if (!reader->Next(frame)) {
      reader->Wait(100);
      continue;
    }
    std::uint64_t n = 0;
    if (!Matches(frame.data, &n)) _exit(3);  // torn
    if (!first && n <= previous) _exit(4);   // out of order
    previous = n;
    first = false;
  }
  _exit(0);
}

struct ChildRun {
  pid_t pid = -1;
  int ready_fd = -1;
};

ChildRun StartReader(RingWriter& writer, std::uint64_t total) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipe_fds[0]);
    ReadInChild(writer.ring_fd(), writer.cursor_fd(0), total, pipe_fds[1]);
  }
  ::close(pipe_fds[1]);
  char ready;
  if (::read(pipe_fds[0], &ready, 1) != 1) {
    ::kill(pid, SIGKILL);
  }
  return {pid, pipe_fds[0]};
}

int WaitChild(const ChildRun& child) {
  ::close(child.ready_fd);
  int status = 0;
  ::waitpid(child.pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(PacketRing, ConcurrentReaderGetsOnlyWholeFramesAndAccountsForAll) {
  constexpr std::uint64_t kTotal = 400'000;
  auto writer = RingWriter::Create(256, 2048, 1);
  ASSERT_TRUE(writer);
  auto child = StartReader(*writer, kTotal);
  ASSERT_GT(child.pid, 0);
  for (std::uint64_t n = 0; n < kTotal; ++n) {
    writer->Write(FrameFor(n), 0, 0);
    if (n % 64 == 63) writer->WakeSleepers();
  }
  writer->WakeSleepers();
  EXPECT_EQ(WaitChild(child), 0);
  const auto& cursor = writer->cursor(0);
  EXPECT_EQ(cursor.delivered.load() + cursor.dropped.load(), kTotal);
}

TEST(PacketRing, WaitingForRoomLosesNothing) {
  constexpr std::uint64_t kTotal = 200'000;
  auto writer = RingWriter::Create(64, 2048, 1);
  ASSERT_TRUE(writer);
  auto child = StartReader(*writer, kTotal);
  ASSERT_GT(child.pid, 0);
  for (std::uint64_t n = 0; n < kTotal; ++n) {
    ASSERT_TRUE(writer->WaitForRoom(5000));
    writer->Write(FrameFor(n), 0, 0);
    if (n % 16 == 15) writer->WakeSleepers();
  }
  writer->WakeSleepers();
  EXPECT_EQ(WaitChild(child), 0);
  EXPECT_EQ(writer->cursor(0).delivered.load(), kTotal);
  EXPECT_EQ(writer->cursor(0).dropped.load(), 0u);
}

TEST(PacketRing, AStalledConsumerHoldsTheWriterOnlyOnce) {
  auto writer = RingWriter::Create(8, 128, 1);
  ASSERT_TRUE(writer);
  auto reader = RingReader::Attach(writer->ring_fd(), writer->cursor_fd(0));
  ASSERT_TRUE(reader);
  for (int n = 0; n < 8; ++n) writer->Write(FrameFor(n), 0, 0);
  EXPECT_FALSE(writer->WaitForRoom(20));  // it reads nothing
  for (int n = 0; n < 100; ++n) {
    EXPECT_TRUE(writer->WaitForRoom(20));  // no longer waited for
    writer->Write(FrameFor(n), 0, 0);
  }
}

}  // namespace
}  // namespace custos::capture
