// The sensor's durable outbox: a FIFO of events (opaque byte strings, JSON
// text in practice) on disk, waiting to be acknowledged by the fleet. Every
// event gets the next sequence number, monotonic for the life of the spool
// directory, across restarts. Thread-safe: all methods may be called from
// any thread; Flush does its fdatasync without holding the lock.
//
// Durability contract:
//  - Append returns once the record was handed to the kernel (one write()).
//    A SIGKILL of sensord after that loses nothing; a power cut may lose it.
//  - An event is *accepted* once a Flush that started after its Append has
//    returned OK: from then on neither a SIGKILL nor a power cut loses it.
//    The owner calls Flush after each batch of appends, or at most every
//    N ms, trading latency for one fdatasync per group.
//  - ReadBatch hands out accepted events only. Otherwise a power cut could
//    roll the sequence back and reuse a number the fleet already stored for
//    a different event, which its idempotent insert would then drop.
//  - Acknowledge(seq) is durable when it returns (ack file: temp, fsync,
//    rename, directory fsync); fully acknowledged segments are then deleted.
//  - When the configured size bound is reached, Append refuses new events and
//    counts them (dropped_full); unacknowledged events are never deleted.
//
// On-disk format, all integers little-endian: segment files
// spool-<first seq, 20 digits>.log, each an 8-byte magic "CSPOOL1\n" then
// records [length u32][crc32 u32][seq u64][length bytes], the CRC (IEEE,
// as zlib's) covering length, seq and bytes; the file "ack" holds the
// highest acknowledged seq in decimal; "lock" is flock()ed by the owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace custos::sensor {

struct SpoolOptions {
  // Bound on the segment files' total size. Acknowledged events that share a
  // segment with unacknowledged ones count until the whole segment is acked,
  // so keep segment_bytes well below max_bytes (an eighth or less).
  std::uint64_t max_bytes = std::uint64_t{256} << 20;
  // A segment is closed and a new one started once it reaches this size.
  std::uint64_t segment_bytes = std::uint64_t{4} << 20;
  // Larger events are refused (counted in rejected_too_large).
  std::uint32_t max_event_bytes = 1u << 20;
  // Sequence number of the first event of a brand-new spool directory. The
  // uplink can start a re-created spool above what the fleet already holds.
  std::uint64_t first_seq = 1;
};

struct SpooledEvent {
  std::uint64_t seq = 0;
  std::string bytes;
};

struct SpoolStats {
  std::uint64_t appended = 0;               // events appended since Open
  std::uint64_t acknowledged = 0;           // events acknowledged since Open
  std::uint64_t pending_events = 0;         // on disk and not yet acknowledged
  std::uint64_t pending_bytes = 0;          // size of the segment files on disk
  std::uint64_t dropped_full = 0;           // refused because of max_bytes, since Open
  std::uint64_t rejected_too_large = 0;     // refused because of max_event_bytes
  std::uint64_t truncated_on_recovery = 0;  // torn or corrupt tails cut by Open
  std::uint64_t truncated_bytes = 0;        // bytes those cuts removed
  std::uint64_t next_seq = 0;               // what the next Append will return
  std::uint64_t accepted_seq = 0;           // highest seq made durable by Flush
  std::uint64_t acked_seq = 0;              // highest seq acknowledged (0: none)
};

class EventSpool {
 public:
  // Opens (creating if needed) the spool in `directory`, recovering from a
  // crash: a torn or corrupt tail is cut, the next seq and the acknowledged
  // position restored. The next seq skips every seq the cut bytes could have
  // held, so a seq the fleet may have seen is never reused. Fails if another
  // process holds the spool, or if the ack file is damaged.
  static Result<std::unique_ptr<EventSpool>> Open(const std::filesystem::path& directory,
                                                  const SpoolOptions& options = {});
  ~EventSpool();
  EventSpool(const EventSpool&) = delete;
  EventSpool& operator=(const EventSpool&) = delete;

  // Appends one event and returns its seq. Fails (without consuming a seq)
  // when the spool is full, the event too large, or the disk fails.
  Result<std::uint64_t> Append(std::string_view event);

  // Makes every event appended before the call durable (see above).
  Status Flush();

  // Up to max_events accepted events starting at the first seq >= from_seq
  // that is still unacknowledged, in seq order, at most max_bytes of event
  // bytes; always at least one event if any is available, so an event larger
  // than max_bytes cannot block the spool. Seqs may skip numbers only where
  // Open cut a corrupt segment.
  Result<std::vector<SpooledEvent>> ReadBatch(std::uint64_t from_seq, std::size_t max_events,
                                              std::size_t max_bytes);

  // Records durably that the fleet holds every event up to `up_to_seq` and
  // deletes segments holding only acknowledged events. Acknowledging a seq
  // not yet accepted is an error; an older ack is a no-op.
  Status Acknowledge(std::uint64_t up_to_seq);

  SpoolStats Stats() const;

 private:
  struct Segment {
    std::uint64_t first_seq = 0;  // from the file name
    std::uint64_t last_seq = 0;   // first_seq - 1 while empty
    std::uint64_t bytes = 0;      // file size, magic included
    std::filesystem::path path;
    std::uint64_t cut_records = 0;  // at most this many records cut by recovery
    std::uint64_t records() const { return last_seq + 1 - first_seq; }
  };
  struct ReadCursor {
    std::uint64_t seq = 0;  // the record at `offset` of segment `first_seq`
    std::uint64_t first_seq = 0;
    std::uint64_t offset = 0;
  };

  EventSpool(std::filesystem::path directory, const SpoolOptions& options);
  Status Recover();
  Status RecoverSegment(Segment& segment);
  Status StartSegment();
  Status WriteAck(std::uint64_t seq);
  Result<std::uint64_t> FindOffset(const Segment& segment, int fd, std::uint64_t seq) const;
  std::uint64_t PendingEventsLocked() const;
  std::uint64_t EventsBetweenLocked(std::uint64_t after, std::uint64_t up_to) const;

  const std::filesystem::path directory_;
  const SpoolOptions options_;
  UniqueFd lock_fd_;

  mutable std::mutex mutex_;
  std::vector<Segment> segments_;        // ascending by first_seq
  std::shared_ptr<UniqueFd> active_fd_;  // the last segment, open for writing
  std::uint64_t next_seq_ = 1;
  std::uint64_t accepted_seq_ = 0;
  std::uint64_t acked_seq_ = 0;
  std::uint64_t total_bytes_ = 0;
  ReadCursor cursor_;
  // Set when an fdatasync failed: the kernel may have dropped the dirty
  // pages, so nothing after that point can be promised durable any more.
  std::string broken_;
  SpoolStats counters_;
};

}  // namespace custos::sensor
