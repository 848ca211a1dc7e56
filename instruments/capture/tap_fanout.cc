#include "tap_fanout.h"

#include <linux/if_packet.h>
#include <net/if.h>

#include <cstdio>
#include <cstring>

#include "common/files.h"
#include "custos/instrument.h"

namespace custos::capture {
namespace {

constexpr std::size_t kBatchFrames = 64;
constexpr std::size_t kBatchBytes = 256 * 1024;

}  // namespace

void TapFanout::Refresh() {
  std::map<std::string, unsigned> present;
  struct if_nameindex* names = ::if_nameindex();
  for (auto* item = names; item && item->if_index != 0; ++item) {
    if (std::string(item->if_name).rfind("cm", 0) == 0) present[item->if_name] = item->if_index;
  }
  if (names) ::if_freenameindex(names);
  for (auto it = taps_.begin(); it != taps_.end();) {
    auto found = present.find(it->first);
    if (found == present.end() || found->second != it->second.index) {
      it = taps_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [name, index] : present) {
    if (!taps_.contains(name)) Open(name, index);
  }
}

void TapFanout::Open(const std::string& name, unsigned index) {
  Tap tap;
  tap.index = index;
  tap.instrument = name;
  // sensord writes the tap's info before it creates the link.
  if (auto text = ReadFile(info_dir_ + "/" + name + ".json")) {
    auto info = nlohmann::json::parse(*text, nullptr, false);
    if (info.is_object()) {
      tap.instrument = ReadSetting(info, "instrument", name).value_or(name);
      std::string expression = ReadSetting(info, "filter", std::string()).value_or("");
      if (!expression.empty()) {
        auto filter = BpfFilter::Compile(expression);
        if (!filter) {
          // sensord checked it; a filter that fails here feeds the tap nothing.
          std::printf("capture: %s: %s\n", name.c_str(), filter.error().message.c_str());
          return;
        }
        tap.filter.emplace(std::move(*filter));
      }
    }
  }
  // Protocol 0: the socket receives nothing, so the engine never reads a tap.
  tap.fd.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_ifindex = static_cast<int>(index);
  if (!tap.fd.valid() ||
      ::bind(tap.fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::printf("capture: cannot open tap %s\n", name.c_str());
    return;
  }
  int one = 1;
  ::setsockopt(tap.fd.get(), SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  int buffer = 4 << 20;
  ::setsockopt(tap.fd.get(), SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  std::printf("capture: feeding %s (%s)%s%s\n", name.c_str(), tap.instrument.c_str(),
              tap.filter ? " with filter " : "",
              tap.filter ? tap.filter->expression().c_str() : "");
  std::fflush(stdout);
  taps_.emplace(name, std::move(tap));
}

void TapFanout::Add(std::span<const std::uint8_t> frame, std::uint32_t wire_length) {
  if (taps_.empty()) return;
  if (arena_.size() + frame.size() > kBatchBytes && !queued_.empty()) Flush();
  queued_.push_back({arena_.size(), static_cast<std::uint32_t>(frame.size()), wire_length});
  arena_.insert(arena_.end(), frame.begin(), frame.end());
  if (queued_.size() >= kBatchFrames) Flush();
}

void TapFanout::Flush() {
  if (queued_.empty()) return;
  for (auto& [name, tap] : taps_) Send(tap);
  queued_.clear();
  arena_.clear();
}

void TapFanout::Send(Tap& tap) {
  messages_.clear();
  vectors_.resize(queued_.size());
  std::size_t count = 0;
  for (const auto& frame : queued_) {
    std::span<const std::uint8_t> data(arena_.data() + frame.offset, frame.length);
    if (tap.filter && !tap.filter->Matches(data, frame.wire_length)) {
      ++tap.filtered;
      continue;
    }
    vectors_[count] = {const_cast<std::uint8_t*>(data.data()), data.size()};
    mmsghdr message{};
    message.msg_hdr.msg_iov = &vectors_[count];
    message.msg_hdr.msg_iovlen = 1;
    messages_.push_back(message);
    ++count;
  }
  std::size_t sent = 0;
  while (sent < count) {
    int result = ::sendmmsg(tap.fd.get(), messages_.data() + sent,
                            static_cast<unsigned>(count - sent), MSG_DONTWAIT);
    if (result <= 0) {
      // Buffer full, frame above the tap's MTU, or the tap is gone: the frame
      // that failed is lost; the rest of the batch gets its own try.
      ++tap.dropped;
      ++sent;
      continue;
    }
    for (int i = 0; i < result; ++i) {
      if (messages_[sent + i].msg_len == vectors_[sent + i].iov_len) {
        ++tap.delivered;
      } else {
        ++tap.dropped;
      }
    }
    sent += static_cast<std::size_t>(result);
  }
}

nlohmann::json TapFanout::Counters() const {
  auto counters = nlohmann::json::object();
  for (const auto& [name, tap] : taps_) {
    counters[tap.instrument] = {{"tap", name},
                                {"delivered", tap.delivered},
                                {"dropped", tap.dropped},
                                {"filtered", tap.filtered}};
  }
  return counters;
}

}  // namespace custos::capture
