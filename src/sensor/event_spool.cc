#include "sensor/event_spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "common/files.h"

namespace custos::sensor {
namespace {

constexpr std::string_view kMagic = "CSPOOL1\n";
constexpr std::uint64_t kHeaderBytes = 16;  // length, crc, seq
// The format's own ceiling, independent of the options, so a spool written
// with a larger max_event_bytes still opens after the option shrinks.
constexpr std::uint32_t kMaxRecordBytes = 64u << 20;
constexpr std::string_view kSegmentPrefix = "spool-";
constexpr std::string_view kSegmentSuffix = ".log";
constexpr char kAckFile[] = "ack";

std::array<std::uint32_t, 256> MakeCrcTable() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

std::uint32_t Crc32(std::uint32_t crc, const void* data, std::size_t size) {
  static const std::array<std::uint32_t, 256> kTable = MakeCrcTable();
  const auto* bytes = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = kTable[(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void PutLe(unsigned char* out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
}

std::uint64_t GetLe(const unsigned char* in, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= std::uint64_t{in[i]} << (8 * i);
  return value;
}

struct RecordHeader {
  std::uint32_t length = 0;
  std::uint32_t crc = 0;
  std::uint64_t seq = 0;
};

RecordHeader DecodeHeader(const unsigned char* in) {
  return {static_cast<std::uint32_t>(GetLe(in, 4)), static_cast<std::uint32_t>(GetLe(in + 4, 4)),
          GetLe(in + 8, 8)};
}

// The CRC covers the length and seq too, so a record whose header was torn
// or overwritten is caught even when its bytes happen to check out.
std::uint32_t RecordCrc(std::uint32_t length, std::uint64_t seq, const void* data) {
  unsigned char fields[12];
  PutLe(fields, length, 4);
  PutLe(fields + 4, seq, 8);
  return Crc32(Crc32(0, fields, sizeof fields), data, length);
}

std::string SegmentName(std::uint64_t first_seq) {
  char digits[21];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(first_seq));
  std::string name(kSegmentPrefix);
  name += digits;
  name += kSegmentSuffix;
  return name;
}

// Returns the first seq encoded in a segment file name, 0 if it is not one.
std::uint64_t ParseSegmentName(std::string_view name) {
  if (name.size() != kSegmentPrefix.size() + 20 + kSegmentSuffix.size() ||
      !name.starts_with(kSegmentPrefix) || !name.ends_with(kSegmentSuffix)) {
    return 0;
  }
  std::string_view digits = name.substr(kSegmentPrefix.size(), 20);
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (error != std::errc() || end != digits.data() + digits.size()) return 0;
  return value;
}

Status FsyncPath(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + path.string());
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + path.string());
  return {};
}

Status ReadExactly(int fd, void* buffer, std::size_t size, std::uint64_t offset,
                   const std::filesystem::path& path) {
  auto* out = static_cast<char*>(buffer);
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read " + path.string());
    if (n == 0) return Error{"read " + path.string() + ": unexpected end of file"};
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Status WriteExactly(int fd, const void* buffer, std::size_t size, std::uint64_t offset,
                    const std::filesystem::path& path) {
  const auto* in = static_cast<const char*>(buffer);
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pwrite(fd, in + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write " + path.string());
    done += static_cast<std::size_t>(n);
  }
  return {};
}

}  // namespace

EventSpool::EventSpool(std::filesystem::path directory, const SpoolOptions& options)
    : directory_(std::move(directory)), options_(options) {}

EventSpool::~EventSpool() = default;

Result<std::unique_ptr<EventSpool>> EventSpool::Open(const std::filesystem::path& directory,
                                                     const SpoolOptions& options) {
  std::string where = "open spool " + directory.string();
  if (options.max_event_bytes == 0 || options.max_event_bytes > kMaxRecordBytes) {
    return Error{where + ": max_event_bytes must be between 1 and 64 MiB"};
  }
  if (options.segment_bytes == 0 || options.first_seq == 0) {
    return Error{where + ": segment_bytes and first_seq must be positive"};
  }
  if (options.max_bytes < kMagic.size() + kHeaderBytes + options.max_event_bytes) {
    return Error{where + ": max_bytes cannot hold even one event of max_event_bytes"};
  }
  if (auto made = MakeDirectories(directory, 0700); !made) return Context(where, made.error());
  std::unique_ptr<EventSpool> spool(new EventSpool(directory, options));
  std::filesystem::path lock_path = directory / "lock";
  spool->lock_fd_.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!spool->lock_fd_.valid()) return ErrnoError(where + ": open lock");
  if (::flock(spool->lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return Error{where + ": in use by another process"};
    return ErrnoError(where + ": flock");
  }
  if (auto recovered = spool->Recover(); !recovered) return Context(where, recovered.error());
  return spool;
}

Status EventSpool::Recover() {
  std::filesystem::path ack_path = directory_ / kAckFile;
  std::error_code ignored;
  std::filesystem::remove(ack_path.string() + ".tmp", ignored);

  bool have_ack = std::filesystem::exists(ack_path, ignored);
  if (have_ack) {
    auto text = ReadFile(ack_path);
    if (!text) return text.error();
    // Refusing a damaged ack file beats guessing: a guess too low re-sends
    // (harmless), but with the segments gone it would also restart the seq
    // below what the fleet holds, and the fleet would drop new events.
    std::string_view digits(*text);
    if (digits.ends_with('\n')) digits.remove_suffix(1);
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), acked_seq_);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size()) {
      return Error{"ack file " + ack_path.string() + " is damaged; not guessing the position"};
    }
  }

  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(directory_.c_str()), ::closedir);
  if (!dir) return ErrnoError("list " + directory_.string());
  while (dirent* entry = ::readdir(dir.get())) {
    std::uint64_t first = ParseSegmentName(entry->d_name);
    if (first == 0) continue;
    Segment segment;
    segment.first_seq = first;
    segment.last_seq = first - 1;
    segment.path = directory_ / entry->d_name;
    segments_.push_back(std::move(segment));
  }
  std::sort(segments_.begin(), segments_.end(),
            [](const Segment& a, const Segment& b) { return a.first_seq < b.first_seq; });

  if (!have_ack && segments_.empty()) {
    // Brand new: make the starting point durable, so a restart with other
    // options cannot move it.
    acked_seq_ = options_.first_seq - 1;
    CUSTOS_TRY(WriteAck(acked_seq_));
  }
  next_seq_ = acked_seq_ + 1;

  std::vector<Segment> kept;
  for (Segment& segment : segments_) {
    CUSTOS_TRY(RecoverSegment(segment));
    // Even an empty or acknowledged segment proves its first seq was handed
    // out by an earlier run, so the next seq never goes below it.
    next_seq_ =
        std::max({next_seq_, segment.first_seq, segment.last_seq + 1 + segment.cut_records});
    if (segment.records() == 0 || segment.last_seq <= acked_seq_) {
      if (::unlink(segment.path.c_str()) != 0) return ErrnoError("delete " + segment.path.string());
      continue;
    }
    // Events that survived only in the page cache become durable here,
    // before ReadBatch may hand them out.
    CUSTOS_TRY(FsyncPath(segment.path));
    total_bytes_ += segment.bytes;
    kept.push_back(std::move(segment));
  }
  segments_ = std::move(kept);
  CUSTOS_TRY(FsyncPath(directory_));
  accepted_seq_ = next_seq_ - 1;

  if (!segments_.empty()) {
    const Segment& last = segments_.back();
    active_fd_ = std::make_shared<UniqueFd>(::open(last.path.c_str(), O_RDWR | O_CLOEXEC));
    if (!active_fd_->valid()) return ErrnoError("open " + last.path.string());
  }
  return {};
}

Status EventSpool::RecoverSegment(Segment& segment) {
  auto content = ReadFile(segment.path);
  if (!content) return content.error();
  const auto* data = reinterpret_cast<const unsigned char*>(content->data());
  std::uint64_t size = content->size();
  std::uint64_t good = 0;  // end of the last valid record
  if (size >= kMagic.size() && std::string_view(*content).substr(0, kMagic.size()) != kMagic) {
    return Error{"segment " + segment.path.string() + " is not in spool format " +
                 std::string(kMagic.substr(0, kMagic.size() - 1))};
  }
  if (size >= kMagic.size()) {
    good = kMagic.size();
    std::uint64_t expected = segment.first_seq;
    while (size - good >= kHeaderBytes) {
      RecordHeader header = DecodeHeader(data + good);
      if (header.length > kMaxRecordBytes || header.seq != expected ||
          size - good - kHeaderBytes < header.length ||
          RecordCrc(header.length, header.seq, data + good + kHeaderBytes) != header.crc) {
        break;
      }
      good += kHeaderBytes + header.length;
      segment.last_seq = expected++;
    }
  }
  segment.bytes = good;
  if (good == size) return {};
  // Damage (not a torn tail) may have hit records the fleet already holds;
  // every record takes at least a header, so this bounds the seqs to skip.
  segment.cut_records = (size - good) / kHeaderBytes;
  // A torn tail (the writer died inside a write) or damage: everything from
  // the first bad record on is unusable, since lengths can no longer be
  // trusted to find the next record.
  spdlog::warn("spool: cutting {} bytes after seq {} from {}", size - good, segment.last_seq,
               segment.path.string());
  ++counters_.truncated_on_recovery;
  counters_.truncated_bytes += size - good;
  if (::truncate(segment.path.c_str(), static_cast<off_t>(good)) != 0) {
    return ErrnoError("truncate " + segment.path.string());
  }
  return {};
}

Status EventSpool::StartSegment() {
  Segment segment;
  segment.first_seq = next_seq_;
  segment.last_seq = next_seq_ - 1;
  segment.path = directory_ / SegmentName(next_seq_);
  auto fd = std::make_shared<UniqueFd>(
      ::open(segment.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd->valid()) return ErrnoError("create " + segment.path.string());
  CUSTOS_TRY(WriteExactly(fd->get(), kMagic.data(), kMagic.size(), 0, segment.path));
  // The name must be durable before any Flush promises the records in it.
  CUSTOS_TRY(FsyncPath(directory_));
  segment.bytes = kMagic.size();
  total_bytes_ += segment.bytes;
  segments_.push_back(std::move(segment));
  active_fd_ = std::move(fd);
  return {};
}

Result<std::uint64_t> EventSpool::Append(std::string_view event) {
  std::lock_guard lock(mutex_);
  if (!broken_.empty()) return Error{broken_};
  if (event.size() > options_.max_event_bytes) {
    ++counters_.rejected_too_large;
    return Error{"spool: event of " + std::to_string(event.size()) +
                 " bytes exceeds the limit of " + std::to_string(options_.max_event_bytes)};
  }
  // Records in a segment are consecutive, so a seq skipped by recovery also
  // starts a new segment.
  bool rotate = !segments_.empty() && (segments_.back().bytes >= options_.segment_bytes ||
                                       segments_.back().last_seq + 1 != next_seq_);
  bool start = segments_.empty() || rotate;
  std::uint64_t record_bytes = kHeaderBytes + event.size();
  std::uint64_t needed = record_bytes + (start ? kMagic.size() : 0);
  if (total_bytes_ + needed > options_.max_bytes) {
    ++counters_.dropped_full;
    return Error{"spool full: " + std::to_string(total_bytes_) + " of " +
                 std::to_string(options_.max_bytes) + " bytes in use"};
  }
  if (rotate) {
    // A closed segment is never synced again, so it is synced now; Flush
    // then only needs to sync the active one.
    if (::fdatasync(active_fd_->get()) != 0) {
      broken_ = ErrnoError("fdatasync " + segments_.back().path.string()).message;
      return Error{broken_};
    }
  }
  if (start) CUSTOS_TRY(StartSegment());

  Segment& segment = segments_.back();
  std::string record(record_bytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(record.data());
  std::memcpy(out + kHeaderBytes, event.data(), event.size());
  auto length = static_cast<std::uint32_t>(event.size());
  PutLe(out, length, 4);
  PutLe(out + 4, RecordCrc(length, next_seq_, event.data()), 4);
  PutLe(out + 8, next_seq_, 8);
  if (auto written = WriteExactly(active_fd_->get(), record.data(), record.size(), segment.bytes,
                                  segment.path);
      !written) {
    // Leave no partial record behind (ENOSPC), or the next append would
    // land after garbage that recovery cuts together with it.
    if (::ftruncate(active_fd_->get(), static_cast<off_t>(segment.bytes)) != 0) {
      broken_ = written.error().message;
    }
    return written.error();
  }
  segment.bytes += record_bytes;
  segment.last_seq = next_seq_;
  total_bytes_ += record_bytes;
  ++counters_.appended;
  return next_seq_++;
}

Status EventSpool::Flush() {
  std::shared_ptr<UniqueFd> fd;
  std::uint64_t target = 0;
  {
    std::lock_guard lock(mutex_);
    if (!broken_.empty()) return Error{broken_};
    target = next_seq_ - 1;
    if (target <= accepted_seq_) return {};
    fd = active_fd_;
  }
  // Earlier segments were synced when they were closed, so syncing the
  // active one covers everything up to `target`.
  if (fd && ::fdatasync(fd->get()) != 0) {
    std::lock_guard lock(mutex_);
    broken_ = ErrnoError("spool fdatasync").message;
    return Error{broken_};
  }
  std::lock_guard lock(mutex_);
  // A failed sync elsewhere meanwhile may have made ours report success.
  if (!broken_.empty()) return Error{broken_};
  accepted_seq_ = std::max(accepted_seq_, target);
  return {};
}

Result<std::uint64_t> EventSpool::FindOffset(const Segment& segment, int fd,
                                             std::uint64_t seq) const {
  std::uint64_t offset = kMagic.size();
  std::uint64_t current = segment.first_seq;
  if (cursor_.first_seq == segment.first_seq && cursor_.seq <= seq && cursor_.seq >= current) {
    offset = cursor_.offset;
    current = cursor_.seq;
  }
  unsigned char header[kHeaderBytes];
  while (current < seq) {
    CUSTOS_TRY(ReadExactly(fd, header, sizeof header, offset, segment.path));
    offset += kHeaderBytes + DecodeHeader(header).length;
    ++current;
  }
  return offset;
}

Result<std::vector<SpooledEvent>> EventSpool::ReadBatch(std::uint64_t from_seq,
                                                        std::size_t max_events,
                                                        std::size_t max_bytes) {
  std::lock_guard lock(mutex_);
  std::vector<SpooledEvent> batch;
  std::uint64_t seq = std::max(from_seq, acked_seq_ + 1);
  std::size_t bytes = 0;
  for (const Segment& segment : segments_) {
    if (batch.size() >= max_events || seq > accepted_seq_) break;
    if (segment.last_seq < seq) continue;
    seq = std::max(seq, segment.first_seq);
    UniqueFd fd(::open(segment.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoError("open " + segment.path.string());
    auto offset = FindOffset(segment, fd.get(), seq);
    if (!offset) return offset.error();
    for (; seq <= segment.last_seq && seq <= accepted_seq_ && batch.size() < max_events; ++seq) {
      unsigned char raw[kHeaderBytes];
      CUSTOS_TRY(ReadExactly(fd.get(), raw, sizeof raw, *offset, segment.path));
      RecordHeader header = DecodeHeader(raw);
      if (header.seq != seq || header.length > kMaxRecordBytes) {
        return Error{"spool: record " + std::to_string(seq) + " in " + segment.path.string() +
                     " is damaged"};
      }
      if (!batch.empty() && bytes + header.length > max_bytes) return batch;
      SpooledEvent event{seq, std::string(header.length, '\0')};
      CUSTOS_TRY(ReadExactly(fd.get(), event.bytes.data(), header.length, *offset + kHeaderBytes,
                             segment.path));
      if (RecordCrc(header.length, seq, event.bytes.data()) != header.crc) {
        return Error{"spool: record " + std::to_string(seq) + " in " + segment.path.string() +
                     " fails its checksum"};
      }
      *offset += kHeaderBytes + header.length;
      bytes += header.length;
      batch.push_back(std::move(event));
      cursor_ = {seq + 1, segment.first_seq, *offset};
    }
  }
  return batch;
}

Status EventSpool::WriteAck(std::uint64_t seq) {
  std::filesystem::path path = directory_ / kAckFile;
  CUSTOS_TRY(WriteFileAtomic(path, std::to_string(seq) + "\n", 0600));
  // The rename must be durable before segments are deleted, or a power cut
  // could bring back an older ack with the segments gone.
  return FsyncPath(directory_);
}

Status EventSpool::Acknowledge(std::uint64_t up_to_seq) {
  std::lock_guard lock(mutex_);
  if (up_to_seq <= acked_seq_) return {};
  if (up_to_seq > accepted_seq_) {
    return Error{"spool: cannot acknowledge " + std::to_string(up_to_seq) + ", only events up to " +
                 std::to_string(accepted_seq_) + " were accepted"};
  }
  if (auto written = WriteAck(up_to_seq); !written) {
    return Context("spool: acknowledge " + std::to_string(up_to_seq), written.error());
  }
  counters_.acknowledged += EventsBetweenLocked(acked_seq_, up_to_seq);
  acked_seq_ = up_to_seq;
  std::size_t done = 0;
  while (done < segments_.size() && segments_[done].last_seq <= acked_seq_) {
    const Segment& segment = segments_[done];
    // A failed unlink leaves a segment that the next Open deletes; the ack
    // itself is already durable.
    if (::unlink(segment.path.c_str()) != 0) {
      spdlog::warn("spool: cannot delete {}: {}", segment.path.string(), std::strerror(errno));
    }
    total_bytes_ -= segment.bytes;
    if (done + 1 == segments_.size()) active_fd_.reset();
    ++done;
  }
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(done));
  return {};
}

std::uint64_t EventSpool::EventsBetweenLocked(std::uint64_t after, std::uint64_t up_to) const {
  std::uint64_t count = 0;
  for (const Segment& segment : segments_) {
    std::uint64_t low = std::max(segment.first_seq, after + 1);
    std::uint64_t high = std::min(segment.last_seq, up_to);
    if (segment.records() > 0 && low <= high) count += high - low + 1;
  }
  return count;
}

std::uint64_t EventSpool::PendingEventsLocked() const {
  return EventsBetweenLocked(acked_seq_, next_seq_ - 1);
}

SpoolStats EventSpool::Stats() const {
  std::lock_guard lock(mutex_);
  SpoolStats stats = counters_;
  stats.pending_events = PendingEventsLocked();
  stats.pending_bytes = total_bytes_;
  stats.next_seq = next_seq_;
  stats.accepted_seq = accepted_seq_;
  stats.acked_seq = acked_seq_;
  return stats;
}

}  // namespace custos::sensor
