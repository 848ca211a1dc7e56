#include "sensor/event_spool.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

namespace custos::sensor {
namespace {
namespace fs = std::filesystem;

// Deterministic content for a seq, so a checker can verify bytes it never
// saw written. Sizes vary from a few bytes to ~40 KiB to make torn writes
// likely when a writer is killed.
std::string Payload(std::uint64_t seq) {
  std::uint64_t mix = seq * 0x9E3779B97F4A7C15ull;
  std::size_t pad = (mix >> 40) % 8 == 0 ? (mix >> 20) % 40000 : (mix >> 20) % 300;
  std::string text = "{\"seq\":" + std::to_string(seq) + ",\"pad\":\"";
  for (std::size_t i = 0; i < pad; ++i) text += static_cast<char>('a' + (seq + i) % 26);
  text += "\"}";
  return text;
}

// Kills and reaps a forked writer when a failed assertion leaves the test.
struct ChildGuard {
  pid_t pid;
  ~ChildGuard() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

class EventSpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/custos-spool-XXXXXX";
    root_ = ::mkdtemp(pattern);
    dir_ = root_ + "/spool";
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<EventSpool> OpenSpool(const SpoolOptions& options = {}) {
    auto spool = EventSpool::Open(dir_, options);
    EXPECT_TRUE(spool.ok()) << spool.error().message;
    return spool.ok() ? std::move(*spool) : nullptr;
  }
  std::vector<fs::path> Segments() const {
    std::vector<fs::path> found;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      if (entry.path().filename().string().starts_with("spool-")) found.push_back(entry.path());
    }
    std::sort(found.begin(), found.end());
    return found;
  }
  static std::vector<SpooledEvent> ReadAll(EventSpool& spool, std::uint64_t from = 0) {
    auto batch = spool.ReadBatch(from, 1u << 30, std::size_t{1} << 40);
    EXPECT_TRUE(batch.ok()) << batch.error().message;
    return batch.ok() ? *batch : std::vector<SpooledEvent>{};
  }
  static std::uint64_t MustAppend(EventSpool& spool, const std::string& event) {
    auto seq = spool.Append(event);
    EXPECT_TRUE(seq.ok()) << seq.error().message;
    return seq.ok() ? *seq : 0;
  }

  std::string root_;
  std::string dir_;
};

TEST_F(EventSpoolTest, HandsOutOnlyFlushedEventsInOrderAndForgetsAcknowledgedOnes) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  EXPECT_EQ(MustAppend(*spool, "one"), 1u);
  EXPECT_EQ(MustAppend(*spool, "two"), 2u);
  EXPECT_EQ(MustAppend(*spool, "three"), 3u);
  EXPECT_TRUE(ReadAll(*spool).empty()) << "unflushed events must not be handed out";
  ASSERT_TRUE(spool->Flush().ok());

  auto all = ReadAll(*spool);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].seq, 1u);
  EXPECT_EQ(all[0].bytes, "one");
  EXPECT_EQ(all[2].seq, 3u);
  EXPECT_EQ(all[2].bytes, "three");

  auto limited = spool->ReadBatch(2, 1, 1 << 20);
  ASSERT_TRUE(limited.ok());
  ASSERT_EQ(limited->size(), 1u);
  EXPECT_EQ((*limited)[0].bytes, "two");
  // The byte limit stops a batch, but never before its first event.
  auto tiny = spool->ReadBatch(1, 10, 1);
  ASSERT_TRUE(tiny.ok());
  ASSERT_EQ(tiny->size(), 1u);
  EXPECT_EQ((*tiny)[0].bytes, "one");

  ASSERT_TRUE(spool->Acknowledge(2).ok());
  auto rest = ReadAll(*spool, 1);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].seq, 3u);
  SpoolStats stats = spool->Stats();
  EXPECT_EQ(stats.appended, 3u);
  EXPECT_EQ(stats.acknowledged, 2u);
  EXPECT_EQ(stats.pending_events, 1u);
  EXPECT_EQ(stats.acked_seq, 2u);
  EXPECT_EQ(stats.accepted_seq, 3u);
  EXPECT_EQ(stats.next_seq, 4u);
  EXPECT_TRUE(spool->Acknowledge(1).ok()) << "an older ack is a no-op";
}

TEST_F(EventSpoolTest, RestartKeepsSequenceAndAcknowledgedPosition) {
  {
    auto spool = OpenSpool();
    ASSERT_TRUE(spool);
    for (int i = 1; i <= 5; ++i) MustAppend(*spool, Payload(i));
    ASSERT_TRUE(spool->Flush().ok());
    ASSERT_TRUE(spool->Acknowledge(3).ok());
  }
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  SpoolStats stats = spool->Stats();
  EXPECT_EQ(stats.acked_seq, 3u);
  EXPECT_EQ(stats.next_seq, 6u);
  EXPECT_EQ(stats.pending_events, 2u);
  auto rest = ReadAll(*spool);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].seq, 4u);
  EXPECT_EQ(rest[0].bytes, Payload(4));
  EXPECT_EQ(rest[1].bytes, Payload(5));
  EXPECT_EQ(MustAppend(*spool, "six"), 6u);
}

TEST_F(EventSpoolTest, EventsAppendedButNotFlushedSurviveAProcessRestart) {
  {
    auto spool = OpenSpool();
    ASSERT_TRUE(spool);
    MustAppend(*spool, "written, never flushed");
  }
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  auto all = ReadAll(*spool);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].bytes, "written, never flushed");
}

TEST_F(EventSpoolTest, RotatesSegmentsAndDeletesThoseFullyAcknowledged) {
  SpoolOptions options;
  options.segment_bytes = 300;
  auto spool = OpenSpool(options);
  ASSERT_TRUE(spool);
  for (int i = 1; i <= 20; ++i) MustAppend(*spool, std::string(100, 'x'));
  ASSERT_TRUE(spool->Flush().ok());
  std::size_t before = Segments().size();
  EXPECT_GE(before, 6u);
  ASSERT_TRUE(spool->Acknowledge(10).ok());
  EXPECT_LT(Segments().size(), before);
  EXPECT_EQ(ReadAll(*spool).front().seq, 11u);
  ASSERT_TRUE(spool->Acknowledge(20).ok());
  EXPECT_TRUE(Segments().empty());
  EXPECT_EQ(spool->Stats().pending_bytes, 0u);
  spool.reset();

  spool = OpenSpool(options);
  ASSERT_TRUE(spool);
  EXPECT_EQ(MustAppend(*spool, "after all acked"), 21u);
}

TEST_F(EventSpoolTest, TornTailIsCutAndTheSpoolContinues) {
  {
    auto spool = OpenSpool();
    ASSERT_TRUE(spool);
    for (int i = 1; i <= 3; ++i) MustAppend(*spool, Payload(i));
    ASSERT_TRUE(spool->Flush().ok());
  }
  fs::path segment = Segments().back();
  auto good_size = fs::file_size(segment);
  {
    // The first 30 bytes of a 100-byte record for seq 4: what a writer
    // killed inside write() leaves.
    std::ofstream out(segment, std::ios::binary | std::ios::app);
    unsigned char header[16] = {100, 0, 0, 0, 1, 2, 3, 4, 4, 0, 0, 0, 0, 0, 0, 0};
    out.write(reinterpret_cast<const char*>(header), sizeof header);
    out << std::string(14, 'z');
  }
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  SpoolStats stats = spool->Stats();
  EXPECT_EQ(stats.truncated_on_recovery, 1u);
  EXPECT_EQ(stats.truncated_bytes, 30u);
  EXPECT_EQ(fs::file_size(segment), good_size);
  auto all = ReadAll(*spool);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2].bytes, Payload(3));
  // 30 cut bytes could have held one record, so seq 4 is skipped.
  std::uint64_t next = MustAppend(*spool, "after the cut");
  EXPECT_EQ(next, 5u);
  ASSERT_TRUE(spool->Flush().ok());
  spool.reset();

  spool = OpenSpool();
  ASSERT_TRUE(spool);
  EXPECT_EQ(spool->Stats().truncated_on_recovery, 0u);
  all = ReadAll(*spool);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[3].seq, 5u);
  EXPECT_EQ(all[3].bytes, "after the cut");
}

TEST_F(EventSpoolTest, DamagedRecordIsCutAndItsSeqNeverReused) {
  {
    auto spool = OpenSpool();
    ASSERT_TRUE(spool);
    for (int i = 1; i <= 3; ++i) MustAppend(*spool, std::string(40, 'a' + i));
    ASSERT_TRUE(spool->Flush().ok());
  }
  {
    // Flip one byte inside the body of record 2.
    std::fstream file(Segments().back(), std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(8 + (16 + 40) + 16 + 5);
    file.put('!');
  }
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  EXPECT_EQ(spool->Stats().truncated_on_recovery, 1u);
  auto all = ReadAll(*spool);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].seq, 1u);
  // Records 2 and 3 may already be at the fleet: their seqs stay used.
  std::uint64_t next = MustAppend(*spool, "new");
  EXPECT_GE(next, 4u);
  ASSERT_TRUE(spool->Flush().ok());
  all = ReadAll(*spool);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].seq, next);
  spool.reset();
  spool = OpenSpool();
  ASSERT_TRUE(spool);
  EXPECT_EQ(ReadAll(*spool).size(), 2u);
}

TEST_F(EventSpoolTest, FullSpoolRefusesAndCountsButKeepsUnacknowledgedEvents) {
  SpoolOptions options;
  options.max_event_bytes = 100;
  options.segment_bytes = 8 + 2 * (16 + 100);    // two records per segment
  options.max_bytes = 5 * (8 + 2 * (16 + 100));  // five segments
  auto spool = OpenSpool(options);
  ASSERT_TRUE(spool);
  std::string event(100, 'e');
  for (int i = 1; i <= 10; ++i) EXPECT_EQ(MustAppend(*spool, event), std::uint64_t(i));
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(spool->Append(event).ok());
  SpoolStats stats = spool->Stats();
  EXPECT_EQ(stats.dropped_full, 3u);
  EXPECT_EQ(stats.pending_events, 10u);
  EXPECT_EQ(stats.next_seq, 11u) << "a refused event consumes no seq";
  EXPECT_LE(stats.pending_bytes, options.max_bytes);

  ASSERT_TRUE(spool->Flush().ok());
  ASSERT_TRUE(spool->Acknowledge(4).ok());  // frees two whole segments
  for (std::uint64_t seq = 11; seq <= 14; ++seq) EXPECT_EQ(MustAppend(*spool, event), seq);
  EXPECT_FALSE(spool->Append(event).ok());
  EXPECT_EQ(spool->Stats().dropped_full, 4u);

  EXPECT_FALSE(spool->Append(std::string(101, 'x')).ok());
  EXPECT_EQ(spool->Stats().rejected_too_large, 1u);
  ASSERT_TRUE(spool->Flush().ok());
  auto all = ReadAll(*spool);
  ASSERT_EQ(all.size(), 10u);
  EXPECT_EQ(all.front().seq, 5u);
  EXPECT_EQ(all.back().seq, 14u);
}

TEST_F(EventSpoolTest, AcknowledgingWhatWasNotAcceptedIsAnError) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  MustAppend(*spool, "a");
  EXPECT_FALSE(spool->Acknowledge(1).ok());
  ASSERT_TRUE(spool->Flush().ok());
  EXPECT_FALSE(spool->Acknowledge(2).ok());
  EXPECT_TRUE(spool->Acknowledge(1).ok());
}

TEST_F(EventSpoolTest, SecondOwnerAndDamagedAckFileAreRefused) {
  auto spool = OpenSpool();
  ASSERT_TRUE(spool);
  auto second = EventSpool::Open(dir_);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
  spool.reset();

  std::ofstream(dir_ + "/ack") << "12x\n";
  auto damaged = EventSpool::Open(dir_);
  ASSERT_FALSE(damaged.ok());
  EXPECT_NE(damaged.error().message.find("ack file"), std::string::npos) << damaged.error().message;
}

TEST_F(EventSpoolTest, NewSpoolStartsAtTheConfiguredFirstSeqForGood) {
  SpoolOptions options;
  options.first_seq = 1000;
  {
    auto spool = OpenSpool(options);
    ASSERT_TRUE(spool);
  }
  auto spool = OpenSpool();  // default first_seq no longer matters
  ASSERT_TRUE(spool);
  EXPECT_EQ(MustAppend(*spool, "x"), 1000u);
}

// The uplink's shape: the bus thread appends while the sender thread
// flushes, reads and acknowledges; every event arrives once, in order.
TEST_F(EventSpoolTest, ConcurrentAppenderAndSenderDeliverEveryEventOnce) {
  SpoolOptions options;
  options.segment_bytes = 16 << 10;
  auto spool = OpenSpool(options);
  ASSERT_TRUE(spool);
  constexpr std::uint64_t kEvents = 1000;
  std::atomic<bool> appender_failed{false};
  std::thread appender([&] {
    for (std::uint64_t i = 1; i <= kEvents; ++i) {
      auto seq = spool->Append(Payload(i));
      if (!seq || *seq != i) appender_failed = true;
      if (i % 50 == 0 && !spool->Flush()) appender_failed = true;
    }
  });
  std::uint64_t next = 1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (next <= kEvents && !appender_failed && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(spool->Flush().ok());
    auto batch = spool->ReadBatch(next, 64, 256 << 10);
    ASSERT_TRUE(batch.ok()) << batch.error().message;
    if (batch->empty()) {
      std::this_thread::yield();
      continue;
    }
    for (const SpooledEvent& event : *batch) {
      ASSERT_EQ(event.seq, next);
      ASSERT_EQ(event.bytes, Payload(next));
      ++next;
    }
    ASSERT_TRUE(spool->Acknowledge(next - 1).ok());
  }
  appender.join();
  EXPECT_FALSE(appender_failed);
  EXPECT_EQ(next, kEvents + 1);
  SpoolStats stats = spool->Stats();
  EXPECT_EQ(stats.acknowledged, kEvents);
  EXPECT_EQ(stats.pending_events, 0u);
  EXPECT_EQ(stats.pending_bytes, 0u);
  EXPECT_TRUE(Segments().empty());
}

// What a sensord that is SIGKILLed at random points leaves behind: every
// event whose Flush returned is there exactly once, and seqs never repeat.
TEST_F(EventSpoolTest, SigkillAtRandomPointsLosesNoAcceptedEvent) {
  std::random_device device;
  unsigned seed = device();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 random(seed);
  SpoolOptions options;
  options.segment_bytes = 64 << 10;

  std::set<std::uint64_t> accepted;
  std::uint64_t reported_ack = 0;
  std::uint64_t highest_seen = 0;
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    ChildGuard guard{child};
    if (child == 0) {
      ::close(pipe_fds[0]);
      std::mt19937_64 child_random(seed + round);
      auto opened = EventSpool::Open(dir_, options);
      if (!opened) ::_exit(2);
      EventSpool& spool = **opened;
      for (int batch = 0;; ++batch) {
        std::string report;
        int events = 1 + static_cast<int>(child_random() % 8);
        for (int i = 0; i < events; ++i) {
          std::uint64_t seq = spool.Stats().next_seq;
          auto appended = spool.Append(Payload(seq));
          if (!appended || *appended != seq) ::_exit(3);
          report += 'E';
          report.append(reinterpret_cast<const char*>(&seq), sizeof seq);
        }
        if (!spool.Flush()) ::_exit(4);
        if (batch % 5 == 4) {
          std::uint64_t acked = spool.Stats().acked_seq;
          std::uint64_t up_to = acked + child_random() % (spool.Stats().accepted_seq - acked + 1);
          if (!spool.Acknowledge(up_to)) ::_exit(5);
          report += 'A';
          report.append(reinterpret_cast<const char*>(&up_to), sizeof up_to);
        }
        if (::write(pipe_fds[1], report.data(), report.size()) !=
            static_cast<ssize_t>(report.size())) {
          ::_exit(6);
        }
      }
    }
    ::close(pipe_fds[1]);
    std::size_t kill_after = 1 + random() % 400;
    std::size_t reports = 0;
    bool killed = false;
    std::string buffer;
    std::uint64_t round_first = 0;
    for (;;) {
      char chunk[4096];
      ssize_t n = ::read(pipe_fds[0], chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      ASSERT_GE(n, 0);
      if (n == 0) break;
      buffer.append(chunk, static_cast<std::size_t>(n));
      std::size_t used = 0;
      for (; buffer.size() - used >= 9; used += 9) {
        std::uint64_t seq;
        std::memcpy(&seq, buffer.data() + used + 1, sizeof seq);
        if (buffer[used] == 'A') {
          reported_ack = std::max(reported_ack, seq);
          continue;
        }
        if (round_first == 0) {
          round_first = seq;
          EXPECT_GT(seq, highest_seen) << "a seq was reused after a restart";
        }
        EXPECT_TRUE(accepted.insert(seq).second) << "seq " << seq << " reported twice";
        ++reports;
      }
      buffer.erase(0, used);
      if (!killed && reports >= kill_after) {
        ASSERT_EQ(::kill(child, SIGKILL), 0);
        killed = true;
      }
    }
    ::close(pipe_fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    guard.pid = 0;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "writer failed on its own, status " << status;

    auto spool = OpenSpool(options);
    ASSERT_TRUE(spool);
    SpoolStats stats = spool->Stats();
    EXPECT_GE(stats.acked_seq, reported_ack);
    auto stored = ReadAll(*spool);
    std::map<std::uint64_t, std::size_t> present;
    std::uint64_t previous = stats.acked_seq;
    for (const SpooledEvent& event : stored) {
      EXPECT_GT(event.seq, previous) << "seqs out of order or repeated";
      previous = event.seq;
      EXPECT_EQ(event.bytes, Payload(event.seq)) << "seq " << event.seq;
      ++present[event.seq];
    }
    std::size_t missing = 0;
    for (std::uint64_t seq : accepted) {
      if (seq > stats.acked_seq && present.count(seq) == 0) ++missing;
    }
    EXPECT_EQ(missing, 0u) << "accepted events lost in round " << round;
    highest_seen = std::max({highest_seen, previous, accepted.empty() ? 0 : *accepted.rbegin()});
    EXPECT_GE(stats.next_seq, highest_seen + 1);
  }
  EXPECT_GT(accepted.size(), static_cast<std::size_t>(kRounds));
}

}  // namespace
}  // namespace custos::sensor
