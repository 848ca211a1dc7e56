// The capture engine's mirror links. Each tap end (an interface named cm* in
// the engine's namespace) gets a send-only AF_PACKET socket and the capture
// filter its instrument asked for, read from /run/custos/taps/<tap>.json.
// Frames are queued and sent in batches, one sendmmsg(2) per tap. Not
// thread-safe.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "capture/bpf_filter.h"
#include "common/unique_fd.h"

namespace custos::capture {

class TapFanout {
 public:
  explicit TapFanout(std::string info_dir) : info_dir_(std::move(info_dir)) {}

  // Opens taps that appeared (or were re-created under the same name) and
  // closes the ones that are gone.
  void Refresh();
  // Queues a copy of the frame; sends the batch when it is full.
  void Add(std::span<const std::uint8_t> frame, std::uint32_t wire_length);
  // Sends whatever is queued.
  void Flush();
  // {"<instrument>": {"delivered", "dropped", "filtered"}} per tap.
  nlohmann::json Counters() const;

 private:
  struct Tap {
    UniqueFd fd;
    unsigned index = 0;  // the interface it was opened on
    std::string instrument;
    std::optional<BpfFilter> filter;
    std::uint64_t delivered = 0;
    std::uint64_t dropped = 0;
    std::uint64_t filtered = 0;
  };
  struct Queued {
    std::size_t offset;
    std::uint32_t length;
    std::uint32_t wire_length;
  };
  void Open(const std::string& name, unsigned index);
  void Send(Tap& tap);

  std::string info_dir_;
  std::map<std::string, Tap> taps_;
  std::vector<std::uint8_t> arena_;
  std::vector<Queued> queued_;
  std::vector<mmsghdr> messages_;
  std::vector<iovec> vectors_;
};

}  // namespace custos::capture
