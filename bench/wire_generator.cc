// custos_wire_generator: puts UDP frames on an interface at a paced rate, for
// the capture bench. Frames go out through an AF_PACKET socket that bypasses
// the qdisc, in sendmmsg batches; each frame's source port differs so frames
// are not all alike. Prints one JSON line: {"sent", "seconds", "pps"}.
//   custos_wire_generator --interface wire1 --rate 200000 --count 400000 --size 64
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "common/unique_fd.h"

namespace {

constexpr std::size_t kBatch = 32;

std::vector<std::uint8_t> Frame(std::size_t size, std::uint16_t source_port) {
  std::vector<std::uint8_t> frame(std::max<std::size_t>(size, 60), 0);
  const std::uint8_t header[] = {0x02, 0,    0, 0, 0,   0x02, 0x02, 0, 0,  0,  0, 0x01,
                                 0x08, 0x00,  // Ethernet, IPv4
                                 0x45, 0,    0, 0, 0,   0,    0x40, 0, 64, 17, 0, 0,  // IPv4, UDP
                                 198,  18,   0, 1, 198, 18,   0,    2};
  std::memcpy(frame.data(), header, sizeof header);
  std::uint16_t ip_length = htons(static_cast<std::uint16_t>(frame.size() - 14));
  std::memcpy(&frame[16], &ip_length, 2);
  std::uint32_t sum = 0;  // IPv4 header checksum
  for (int i = 14; i < 34; i += 2) sum += (frame[i] << 8) | frame[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  std::uint16_t checksum = htons(static_cast<std::uint16_t>(~sum));
  std::memcpy(&frame[24], &checksum, 2);
  std::uint16_t ports[] = {htons(source_port), htons(9),
                           htons(static_cast<std::uint16_t>(frame.size() - 34)), 0};
  std::memcpy(&frame[34], ports, sizeof ports);
  return frame;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"custos_wire_generator: paced UDP frames on an interface"};
  std::string interface;
  double rate = 100000;
  std::uint64_t count = 100000;
  std::size_t size = 64;
  app.add_option("--interface", interface, "send here")->required();
  app.add_option("--rate", rate, "frames per second (0: as fast as possible)");
  app.add_option("--count", count, "frames to send");
  app.add_option("--size", size, "frame bytes (60 to 1514)")->check(CLI::Range(60, 1514));
  CLI11_PARSE(app, argc, argv);

  custos::UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_ifindex = static_cast<int>(::if_nametoindex(interface.c_str()));
  if (!fd.valid() || address.sll_ifindex == 0 ||
      ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::fprintf(stderr, "custos_wire_generator: cannot send on %s: %s\n", interface.c_str(),
                 std::strerror(errno));
    return 1;
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  ::prctl(PR_SET_TIMERSLACK, 1UL);  // sleeps end when asked, not 50 us later

  std::vector<std::vector<std::uint8_t>> frames;
  for (std::uint16_t port = 0; port < 1024; ++port) frames.push_back(Frame(size, 1024 + port));
  std::vector<iovec> vectors(kBatch);
  std::vector<mmsghdr> messages(kBatch);
  auto start = std::chrono::steady_clock::now();
  auto last_progress = start;
  std::uint64_t sent = 0;
  while (sent < count) {
    if (rate > 0) {
      // Paced: batch k leaves no earlier than k * batch / rate after the start.
      auto due = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             std::chrono::duration<double>(static_cast<double>(sent) / rate));
      // Sleep most of the wait: on a small host the spin would take a core
      // from the very capture being measured.
      auto left = due - std::chrono::steady_clock::now();
      if (left > std::chrono::microseconds(40))
        std::this_thread::sleep_for(left - std::chrono::microseconds(20));
      while (std::chrono::steady_clock::now() < due) {
      }
    }
    std::size_t batch = std::min<std::uint64_t>(kBatch, count - sent);
    for (std::size_t i = 0; i < batch; ++i) {
      auto& frame = frames[(sent + i) % frames.size()];
      vectors[i] = {frame.data(), frame.size()};
      messages[i] = {};
      messages[i].msg_hdr.msg_iov = &vectors[i];
      messages[i].msg_hdr.msg_iovlen = 1;
    }
    int result = ::sendmmsg(fd.get(), messages.data(), static_cast<unsigned>(batch), 0);
    if (result > 0) {
      sent += static_cast<std::uint64_t>(result);
      last_progress = std::chrono::steady_clock::now();
    } else if (result < 0 && errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
      std::fprintf(stderr, "custos_wire_generator: send: %s\n", std::strerror(errno));
      return 1;
    } else if (std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(2)) {
      std::fprintf(stderr, "custos_wire_generator: %s takes no frames\n", interface.c_str());
      return 1;
    } else {
      std::this_thread::yield();
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"sent\": %llu, \"seconds\": %.6f, \"pps\": %.0f}\n",
              static_cast<unsigned long long>(sent), seconds, static_cast<double>(sent) / seconds);
  return 0;
}
