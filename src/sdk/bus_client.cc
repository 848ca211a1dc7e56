#include "custos/bus_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "bus/frame.h"

namespace custos {
namespace {

using bus::Frame;
using bus::FrameType;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kMaxFrame = bus::kDefaultMaxFrame;
constexpr std::uint16_t kWantsReply = 1;  // in a send frame's code

}  // namespace

std::string BusClient::DefaultPath() {
  const char* path = std::getenv("CUSTOS_BUS");
  return path != nullptr ? path : "/run/custos/bus/bus.sock";
}

Result<BusClient> BusClient::Connect(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return Error{"bus socket path too long: " + path};
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError("socket");
  BusClient client(fd);
  int buffer = 1 << 20;  // fewer wake-ups per event under load
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return ErrnoError("cannot connect to the bus at " + path);
  }
  // The broker speaks first and tells us who we are.
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (client.name_.empty()) {
    auto read = client.ReadOne(deadline);
    if (!read) return read.error();
    if (!*read) return Error{"the bus at " + path + " did not greet us"};
  }
  return client;
}

BusClient::BusClient(BusClient&& other) noexcept { *this = std::move(other); }

BusClient& BusClient::operator=(BusClient&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    name_ = std::move(other.name_);
    next_request_ = other.next_request_;
    auto_flush_ = other.auto_flush_;
    out_ = std::move(other.out_);
    in_ = std::move(other.in_);
    in_offset_ = other.in_offset_;
    inbox_ = std::move(other.inbox_);
    answers_ = std::move(other.answers_);
    outstanding_ = std::move(other.outstanding_);
  }
  return *this;
}

BusClient::~BusClient() {
  if (fd_ >= 0) {
    (void)Flush();
    ::close(fd_);
  }
}

Status BusClient::Write(const std::string& bytes, int pass_fd) {
  std::size_t written = 0;
  while (written < bytes.size()) {
    iovec io{const_cast<char*>(bytes.data() + written), bytes.size() - written};
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (pass_fd >= 0 && written == 0) {
      message.msg_control = control;
      message.msg_controllen = sizeof control;
      cmsghdr* header = CMSG_FIRSTHDR(&message);
      header->cmsg_level = SOL_SOCKET;
      header->cmsg_type = SCM_RIGHTS;
      header->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(header), &pass_fd, sizeof pass_fd);
    }
    ssize_t n = ::sendmsg(fd_, &message, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("bus write");
    written += static_cast<std::size_t>(n);
  }
  return {};
}

Status BusClient::Flush() {
  if (out_.empty()) return {};
  std::string pending;
  pending.swap(out_);
  return Write(pending);
}

std::uint32_t BusClient::NextId() {
  if (next_request_ == 0) next_request_ = 1;  // 0 means "no request"
  outstanding_.insert(next_request_);
  return next_request_++;
}

Status BusClient::Check(std::string_view name, std::string_view payload) const {
  if (!bus::IsValidName(name)) {
    std::string message = "'";  // built piecewise: GCC 12 warns falsely on "'" + string
    message += name;
    message += "' is not a valid bus name";
    return Error{message};
  }
  if (payload.size() > bus::MaxPayload(kMaxFrame)) {
    return Error{"payload of " + std::to_string(payload.size()) + " bytes is over the bus limit"};
  }
  return {};
}

Status BusClient::Publish(std::string_view topic, std::string_view payload) {
  CUSTOS_TRY(Check(topic, payload));
  bus::EncodeFrame(
      Frame{FrameType::kPublish, 0, 0, std::string(topic), "", {}, std::string(payload)}, out_);
  if (auto_flush_ || out_.size() >= 64 * 1024) return Flush();
  return {};
}

Result<bool> BusClient::ReadOne(Clock::time_point deadline) {
  for (;;) {
    Frame frame;
    auto decoded = bus::DecodeFrame(std::string_view(in_).substr(in_offset_), kMaxFrame, frame);
    if (decoded.status == bus::DecodeStatus::kInvalid)
      return Error{"bus sent a bad frame: " + decoded.error};
    if (decoded.status == bus::DecodeStatus::kFrame) {
      in_offset_ += decoded.consumed;
      switch (frame.type) {
        case FrameType::kHello:
          name_ = frame.first;
          break;
        case FrameType::kEvent:
          inbox_.push_back(
              {BusMessage::Kind::kEvent, frame.first, frame.second, "", std::move(frame.payload)});
          break;
        case FrameType::kMessage:
          inbox_.push_back({BusMessage::Kind::kMessage, "", frame.first, frame.second,
                            std::move(frame.payload), frame.request_id, frame.code == kWantsReply});
          break;
        case FrameType::kFile:
          inbox_.push_back(
              {BusMessage::Kind::kFile, "", frame.first, frame.second, std::move(frame.payload)});
          break;
        case FrameType::kOk:
        case FrameType::kResponse:
        case FrameType::kSettings:
          // An answer that came after its caller gave up is dropped.
          if (outstanding_.contains(frame.request_id)) {
            answers_.push_back({frame.request_id, Answer{true, std::move(frame.payload)}});
          }
          break;
        case FrameType::kError:
          if (outstanding_.contains(frame.request_id)) {
            answers_.push_back({frame.request_id, Answer{false, std::move(frame.payload)}});
          } else {
            inbox_.push_back({BusMessage::Kind::kError, "", "", "", std::move(frame.payload)});
          }
          break;
        default:
          return Error{"bus sent a frame meant for the broker"};
      }
      return true;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd entry{fd_, POLLIN, 0};
    int ready = ::poll(&entry, 1, static_cast<int>(std::max<long long>(left.count(), 0)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return ErrnoError("poll");
    if (ready == 0) return false;
    in_.erase(0, in_offset_);
    in_offset_ = 0;
    char buffer[65536];
    ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("bus read");
    if (n == 0) return Error{"the bus closed the connection"};
    in_.append(buffer, static_cast<std::size_t>(n));
  }
}

Result<std::string> BusClient::WaitFor(std::uint32_t request_id,
                                       std::chrono::milliseconds timeout) {
  // Whatever happens, this id is no longer awaited; a late answer is dropped.
  struct Forget {
    std::set<std::uint32_t>& ids;
    std::uint32_t id;
    ~Forget() { ids.erase(id); }
  } forget{outstanding_, request_id};
  CUSTOS_TRY(Flush());
  auto deadline = Clock::now() + timeout;
  for (;;) {
    for (auto it = answers_.begin(); it != answers_.end(); ++it) {
      if (it->first != request_id) continue;
      Answer answer = std::move(it->second);
      answers_.erase(it);
      if (!answer.ok) return Error{std::move(answer.payload)};
      return std::move(answer.payload);
    }
    auto read = ReadOne(deadline);
    if (!read) return read.error();
    if (!*read)
      return Error{"no answer from the bus within " + std::to_string(timeout.count()) + " ms"};
  }
}

Result<std::string> BusClient::Call(FrameType type, std::uint16_t code, const std::string& first,
                                    const std::string& second, std::string_view payload,
                                    std::chrono::milliseconds timeout) {
  std::uint32_t id = NextId();
  bus::EncodeFrame(Frame{type, id, code, first, second, {}, std::string(payload)}, out_);
  return WaitFor(id, timeout);
}

Status BusClient::Subscribe(const std::string& topic, std::chrono::milliseconds timeout) {
  CUSTOS_TRY(Check(topic, ""));
  auto answer = Call(FrameType::kSubscribe, 0, topic, "", "", timeout);
  if (!answer) return answer.error();
  return {};
}

Status BusClient::Send(const std::string& to, const std::string& type, std::string_view payload,
                       std::chrono::milliseconds timeout) {
  CUSTOS_TRY(Check(to, payload));
  CUSTOS_TRY(Check(type, ""));
  auto answer = Call(FrameType::kSend, 0, to, type, payload, timeout);
  if (!answer) return answer.error();
  return {};
}

Result<std::string> BusClient::Request(const std::string& to, const std::string& type,
                                       std::string_view payload,
                                       std::chrono::milliseconds timeout) {
  CUSTOS_TRY(Check(to, payload));
  CUSTOS_TRY(Check(type, ""));
  return Call(FrameType::kSend, kWantsReply, to, type, payload, timeout);
}

Status BusClient::Reply(const BusMessage& request, std::string_view payload) {
  if (!request.wants_reply) return Error{"that message does not want a reply"};
  bus::EncodeFrame(
      Frame{FrameType::kReply, request.request_id, 0, request.sender, "", {}, std::string(payload)},
      out_);
  return Flush();
}

Status BusClient::SendFile(int fd, const std::string& name,
                           const std::vector<std::string>& recipients,
                           std::chrono::milliseconds timeout) {
  CUSTOS_TRY(Flush());
  std::uint32_t id = NextId();
  std::string frame;
  bus::EncodeFrame(Frame{FrameType::kFileSend, id, 0, "", name, recipients, ""}, frame);
  CUSTOS_TRY(Write(frame, fd));
  auto answer = WaitFor(id, timeout);
  if (!answer) return answer.error();
  return {};
}

Result<std::string> BusClient::Settings(std::chrono::milliseconds timeout) {
  return Call(FrameType::kGetSettings, 0, "", "", "", timeout);
}

Result<std::optional<BusMessage>> BusClient::Receive(std::chrono::milliseconds timeout) {
  CUSTOS_TRY(Flush());
  auto deadline = Clock::now() + timeout;
  while (inbox_.empty()) {
    auto read = ReadOne(deadline);
    if (!read) return read.error();
    if (!*read) return std::optional<BusMessage>{};
  }
  BusMessage message = std::move(inbox_.front());
  inbox_.pop_front();
  return std::optional<BusMessage>(std::move(message));
}

}  // namespace custos
