#include "bus/broker.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "bus/file_delivery.h"
#include "common/log.h"

namespace custos::bus {
namespace {

constexpr std::size_t kMaxPendingFds = 4;
constexpr std::uint16_t kWantsReply = 1;

bool IsBrokerOnly(FrameType type) {
  switch (type) {
    case FrameType::kHello:
    case FrameType::kEvent:
    case FrameType::kMessage:
    case FrameType::kResponse:
    case FrameType::kError:
    case FrameType::kOk:
    case FrameType::kFile:
    case FrameType::kSettings:
      return true;
    default:
      return false;
  }
}

}  // namespace

struct Broker::Connection {
  std::uint64_t id = 0;
  UniqueFd fd;
  Endpoint* endpoint = nullptr;
  std::string in;
  std::size_t in_offset = 0;
  std::string out;
  std::size_t out_offset = 0;
  bool dirty = false;
  bool want_write = false;
  bool closing = false;
  std::vector<UniqueFd> fds;  // descriptors received, waiting for a file frame
  std::set<std::string> topics;
  std::size_t Queued() const { return out.size() - out_offset; }
};

struct Broker::Endpoint {
  EndpointSpec spec;
  UniqueFd listener;
  std::vector<Connection*> connections;
  EndpointStats stats;
  // Requests to this endpoint awaiting a reply, by the token the broker
  // gave them (ids chosen by clients could collide across connections).
  struct Pending {
    std::uint64_t requester_connection = 0;
    std::string requester;
    std::uint32_t request_id = 0;  // as the requester chose it
    std::chrono::steady_clock::time_point since;
  };
  std::map<std::uint32_t, Pending> pending;
};

Broker::Broker(const BrokerLimits& limits) : limits_(limits) {}

Result<std::unique_ptr<Broker>> Broker::Start(const BrokerLimits& limits) {
  std::unique_ptr<Broker> broker(new Broker(limits));
  broker->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!broker->epoll_.valid()) return ErrnoError("epoll_create1");
  broker->wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!broker->wake_.valid()) return ErrnoError("eventfd");
  broker->Watch(broker->wake_.get(), EPOLLIN);
  broker->thread_ = std::thread([raw = broker.get()] { raw->Loop(); });
  return broker;
}

Broker::~Broker() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  std::uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  for (auto& [name, endpoint] : endpoints_) ::unlink(endpoint->spec.socket_path.c_str());
}

void Broker::Watch(int fd, std::uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event);
}

Status Broker::AddEndpoint(const EndpointSpec& spec) {
  std::lock_guard lock(mutex_);
  auto existing = endpoints_.find(spec.name);
  if (existing != endpoints_.end()) {
    // Same instrument again (a restart): keep its socket and counters.
    existing->second->spec.settings_json = spec.settings_json;
    return {};
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (spec.socket_path.size() >= sizeof address.sun_path)
    return Error{"bus socket path too long: " + spec.socket_path};
  std::memcpy(address.sun_path, spec.socket_path.c_str(), spec.socket_path.size() + 1);
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener.valid()) return ErrnoError("socket");
  ::unlink(spec.socket_path.c_str());
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return ErrnoError("bind " + spec.socket_path);
  }
  // Only the instrument's own root (and host root) may connect.
  if (::chown(spec.socket_path.c_str(), spec.host_uid, spec.host_uid) != 0 ||
      ::chmod(spec.socket_path.c_str(), 0600) != 0) {
    return ErrnoError("set owner of " + spec.socket_path);
  }
  if (::listen(listener.get(), 64) != 0) return ErrnoError("listen " + spec.socket_path);
  auto endpoint = std::make_unique<Endpoint>();
  endpoint->spec = spec;
  listeners_[listener.get()] = endpoint.get();
  Watch(listener.get(), EPOLLIN);
  endpoint->listener = std::move(listener);
  endpoints_[spec.name] = std::move(endpoint);
  return {};
}

void Broker::RemoveEndpoint(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto found = endpoints_.find(name);
  if (found == endpoints_.end()) return;
  Endpoint& endpoint = *found->second;
  for (Connection* connection : std::vector<Connection*>(endpoint.connections)) Close(*connection);
  CloseMarked();
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, endpoint.listener.get(), nullptr);
  listeners_.erase(endpoint.listener.get());
  ::unlink(endpoint.spec.socket_path.c_str());
  endpoints_.erase(found);
}

void Broker::SetSettings(const std::string& name, const std::string& settings_json) {
  std::lock_guard lock(mutex_);
  auto found = endpoints_.find(name);
  if (found != endpoints_.end()) found->second->spec.settings_json = settings_json;
}

void Broker::SetPolicy(BusPolicy policy) {
  std::lock_guard lock(mutex_);
  policy_ = std::move(policy);
  // Subscriptions the new policy no longer allows end now.
  for (auto& entry : subscribers_) {
    const std::string& topic = entry.first;  // a named reference: lambdas may capture it
    std::erase_if(entry.second, [&](Connection* connection) {
      if (policy_.AllowsSubscribe(connection->endpoint->spec.name, topic)) return false;
      connection->topics.erase(topic);
      return true;
    });
  }
}

void Broker::SetPlatformSink(PlatformSink sink) {
  std::lock_guard lock(mutex_);
  sink_ = std::move(sink);
}

std::map<std::string, EndpointStats> Broker::Stats() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, EndpointStats> stats;
  for (const auto& [name, endpoint] : endpoints_) {
    EndpointStats copy = endpoint->stats;
    copy.connections = endpoint->connections.size();
    copy.queued_bytes = 0;
    for (const Connection* connection : endpoint->connections)
      copy.queued_bytes += connection->Queued();
    stats[name] = std::move(copy);
  }
  return stats;
}

void Broker::Loop() {
  epoll_event events[64];
  for (;;) {
    int count = ::epoll_wait(epoll_.get(), events, 64, -1);
    if (count < 0 && errno != EINTR) {
      spdlog::critical("bus broker stopped: epoll_wait: {}", std::strerror(errno));
      return;
    }
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    for (int i = 0; i < count; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_.get()) {
        std::uint64_t value = 0;
        (void)!::read(fd, &value, sizeof value);
        continue;
      }
      if (auto listener = listeners_.find(fd); listener != listeners_.end()) {
        Accept(*listener->second);
        continue;
      }
      auto found = connections_.find(fd);
      if (found == connections_.end() || found->second->closing) continue;
      Connection& connection = *found->second;
      if (events[i].events & EPOLLOUT) Flush(connection);
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ReadFrom(connection);
    }
    FlushDirty();
    CloseMarked();
  }
}

void Broker::Accept(Endpoint& endpoint) {
  for (;;) {
    UniqueFd fd(::accept4(endpoint.listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) return;
    if (endpoint.connections.size() >= limits_.connections_per_endpoint) continue;  // closes it
    // Larger buffers mean fewer wake-ups per event under load.
    int buffer = 1 << 20;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    auto connection = std::make_unique<Connection>();
    connection->id = next_connection_id_++;
    connection->endpoint = &endpoint;
    Watch(fd.get(), EPOLLIN);
    connection->fd = std::move(fd);
    Connection& raw = *connection;
    endpoint.connections.push_back(&raw);
    connections_[raw.fd.get()] = std::move(connection);
    nlohmann::json hello = {{"version", kVersion}, {"max_frame", limits_.max_frame}};
    Enqueue(raw, Frame{FrameType::kHello, 0, 0, endpoint.spec.name, "", {}, hello.dump()});
    Flush(raw);
  }
}

void Broker::ReadFrom(Connection& connection) {
  Frame frame;
  for (int round = 0; round < 8 && !connection.closing; ++round) {
    char data[65536];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPendingFds)];
    iovec io{data, sizeof data};
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(connection.fd.get(), &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) Close(connection);
      return;
    }
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
         header = CMSG_NXTHDR(&message, header)) {
      if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
      std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
        connection.fds.emplace_back(fd);
      }
    }
    if ((message.msg_flags & MSG_CTRUNC) || connection.fds.size() > kMaxPendingFds) {
      ++connection.endpoint->stats.malformed;
      Refuse(connection, 0, ErrorCode::kMalformed, "too many descriptors passed");
      Flush(connection);
      Close(connection);
      return;
    }
    if (n == 0) {
      Close(connection);
      return;
    }
    // Decode straight from the receive buffer unless a partial frame waits;
    // only an unfinished tail is kept, so most bytes are copied once less.
    std::string_view input;
    bool buffered = !connection.in.empty();
    if (buffered) {
      connection.in.append(data, static_cast<std::size_t>(n));
      input = std::string_view(connection.in).substr(connection.in_offset);
    } else {
      input = std::string_view(data, static_cast<std::size_t>(n));
    }
    std::size_t used = 0;
    for (;;) {
      auto decoded = DecodeFrame(input.substr(used), limits_.max_frame, frame, false);
      if (decoded.status == DecodeStatus::kNeedMore) break;
      if (decoded.status == DecodeStatus::kInvalid) {
        ++connection.endpoint->stats.malformed;
        Refuse(connection, 0, ErrorCode::kMalformed, decoded.error);
        Flush(connection);
        Close(connection);
        return;
      }
      used += decoded.consumed;
      Dispatch(connection, frame, connection.fds);
      if (connection.closing) return;
    }
    if (buffered) {
      connection.in_offset += used;
      if (connection.in_offset == connection.in.size()) {
        connection.in.clear();
        connection.in_offset = 0;
      } else if (connection.in_offset > 65536) {
        connection.in.erase(0, connection.in_offset);
        connection.in_offset = 0;
      }
    } else {
      connection.in.assign(input.substr(used));
      connection.in_offset = 0;
    }
  }
}

void Broker::Dispatch(Connection& connection, Frame& frame, std::vector<UniqueFd>& fds) {
  if (IsBrokerOnly(frame.type)) {
    // The only way to claim another sender would be to send what only the
    // broker sends; that ends the connection.
    ++connection.endpoint->stats.malformed;
    Refuse(connection, frame.request_id, ErrorCode::kMalformed,
           "frame type " + std::to_string(static_cast<int>(frame.type)) +
               " is sent by the broker only");
    Flush(connection);
    Close(connection);
    return;
  }
  // What the broker forwards adds names to the payload; it must still fit.
  if (frame.type != FrameType::kFileSend &&
      frame.payload_view.size() > MaxPayload(limits_.max_frame)) {
    // A refused reply must not carry the token, which the replier's own requests could match.
    Refuse(connection, frame.type == FrameType::kReply ? 0 : frame.request_id,
           ErrorCode::kMalformed,
           "payload of " + std::to_string(frame.payload_view.size()) +
               " bytes exceeds the limit of " + std::to_string(MaxPayload(limits_.max_frame)));
    return;
  }
  switch (frame.type) {
    case FrameType::kPublish:
      return Publish(connection, frame);
    case FrameType::kSend:
      return SendDirect(connection, frame);
    case FrameType::kReply:
      return Reply(connection, frame);
    case FrameType::kSubscribe:
      return Subscribe(connection, frame);
    case FrameType::kFileSend:
      return SendFile(connection, frame, fds);
    case FrameType::kGetSettings:
      if (!Enqueue(connection, Frame{FrameType::kSettings,
                                     frame.request_id,
                                     0,
                                     "",
                                     "",
                                     {},
                                     connection.endpoint->spec.settings_json})) {
        ++connection.endpoint->stats.messages_dropped;
      }
      return;
    default:
      return;
  }
}

void Broker::Publish(Connection& from, const Frame& frame) {
  const std::string& sender = from.endpoint->spec.name;
  if (!IsValidName(frame.first) || !policy_.AllowsPublish(sender, frame.first)) {
    ++from.endpoint->stats.refused;
    Refuse(from, frame.request_id, ErrorCode::kForbidden,
           sender + " may not publish on topic '" + frame.first +
               "' (its bus.publish does not list it)");
    return;
  }
  ++from.endpoint->stats.topics[frame.first].published;
  auto subscribers = subscribers_.find(frame.first);
  if (subscribers != subscribers_.end()) {
    for (Connection* subscriber : subscribers->second) {
      auto& counters = subscriber->endpoint->stats.topics[frame.first];
      std::size_t before = subscriber->out.size();
      EncodeEvent(frame.first, sender, frame.payload_view, subscriber->out);
      if (subscriber->Queued() > limits_.queue_bytes) {
        subscriber->out.resize(before);
        ++counters.dropped;
        continue;
      }
      ++counters.delivered;
      if (!subscriber->dirty) {
        subscriber->dirty = true;
        dirty_.push_back(subscriber);
      }
    }
  }
  if (sink_) sink_(frame.first, sender, frame.payload_view);
}

void Broker::SendDirect(Connection& from, const Frame& frame) {
  const std::string& sender = from.endpoint->spec.name;
  const std::string& recipient = frame.first;
  const std::string& type = frame.second;
  if (frame.request_id == 0 || !IsValidName(recipient) || !IsValidName(type)) {
    Refuse(from, frame.request_id, ErrorCode::kMalformed,
           "a message needs a request id, a recipient and a type");
    return;
  }
  if (!policy_.AllowsMessage(sender, recipient, type)) {
    ++from.endpoint->stats.refused;
    Refuse(from, frame.request_id, ErrorCode::kForbidden,
           "policy does not allow " + sender + " to send '" + type + "' to " + recipient +
               " (policy.messages needs {from: " + sender + ", to: " + recipient + ", types: [" +
               type + "]})");
    return;
  }
  Connection* target = Primary(recipient);
  if (target == nullptr) {
    Refuse(from, frame.request_id, ErrorCode::kUnknown, recipient + " is not connected to the bus");
    return;
  }
  bool wants_reply = frame.code == kWantsReply;
  auto& pending = target->endpoint->pending;
  if (wants_reply && pending.size() >= limits_.pending_requests) {
    // Requests nobody answered for a minute are forgotten before refusing.
    auto cutoff = std::chrono::steady_clock::now() - std::chrono::minutes(1);
    std::erase_if(pending, [&](const auto& entry) { return entry.second.since < cutoff; });
  }
  if (wants_reply && pending.size() >= limits_.pending_requests) {
    Refuse(from, frame.request_id, ErrorCode::kBusy,
           recipient + " has too many unanswered requests");
    return;
  }
  std::uint32_t token = wants_reply ? NextToken() : frame.request_id;
  if (!Enqueue(*target, Frame{FrameType::kMessage,
                              token,
                              frame.code,
                              sender,
                              type,
                              {},
                              std::string(frame.payload_view)})) {
    ++target->endpoint->stats.messages_dropped;
    Refuse(from, frame.request_id, ErrorCode::kBusy,
           recipient + "'s queue is full; message not delivered");
    return;
  }
  ++from.endpoint->stats.messages_sent;
  ++target->endpoint->stats.messages_received;
  if (wants_reply) {
    pending[token] = {from.id, sender, frame.request_id, std::chrono::steady_clock::now()};
  } else {
    Enqueue(from, Frame{FrameType::kOk, frame.request_id, 0, "", "", {}, ""});
  }
}

void Broker::Reply(Connection& from, const Frame& frame) {
  auto& pending = from.endpoint->pending;
  auto found = pending.find(frame.request_id);
  if (found == pending.end() || found->second.requester != frame.first) {
    // Request id 0: the refusal arrives as an asynchronous error, since the
    // replier waits for no answer of its own.
    Refuse(from, 0, ErrorCode::kUnknown,
           "no request " + std::to_string(frame.request_id) + " from " + frame.first +
               " awaits a reply");
    return;
  }
  Endpoint::Pending request = found->second;
  pending.erase(found);
  auto requester_endpoint = endpoints_.find(request.requester);
  if (requester_endpoint == endpoints_.end()) return;
  for (Connection* requester : requester_endpoint->second->connections) {
    if (requester->id != request.requester_connection) continue;
    if (!Enqueue(*requester, Frame{FrameType::kResponse,
                                   request.request_id,
                                   0,
                                   from.endpoint->spec.name,
                                   "",
                                   {},
                                   std::string(frame.payload_view)})) {
      ++requester->endpoint->stats.messages_dropped;
      Refuse(from, 0, ErrorCode::kBusy, frame.first + "'s queue is full; reply not delivered");
    }
    return;
  }
}

std::uint32_t Broker::NextToken() {
  if (++next_token_ == 0) ++next_token_;
  return next_token_;
}

void Broker::Subscribe(Connection& from, const Frame& frame) {
  const std::string& name = from.endpoint->spec.name;
  if (!IsValidName(frame.first) || !policy_.AllowsSubscribe(name, frame.first)) {
    ++from.endpoint->stats.refused;
    Refuse(from, frame.request_id, ErrorCode::kForbidden,
           name + " may not subscribe to topic '" + frame.first +
               "' (its bus.subscribe does not list it)");
    return;
  }
  if (from.topics.insert(frame.first).second) subscribers_[frame.first].push_back(&from);
  Enqueue(from, Frame{FrameType::kOk, frame.request_id, 0, "", "", {}, ""});
}

void Broker::SendFile(Connection& from, const Frame& frame, std::vector<UniqueFd>& fds) {
  const std::string& sender = from.endpoint->spec.name;
  if (fds.empty()) {
    Refuse(from, frame.request_id, ErrorCode::kMalformed, "a file frame must carry a descriptor");
    return;
  }
  UniqueFd file = std::move(fds.front());
  fds.erase(fds.begin());
  if (!IsValidFileName(frame.second) || frame.list.empty()) {
    Refuse(from, frame.request_id, ErrorCode::kMalformed,
           "a file needs a plain name and recipients");
    return;
  }
  std::string failures;
  for (const auto& recipient : frame.list) {
    auto endpoint = endpoints_.find(recipient);
    if (!policy_.AllowsMessage(sender, recipient, kFileMessageType) ||
        endpoint == endpoints_.end()) {
      ++from.endpoint->stats.refused;
      failures += (failures.empty() ? "" : "; ") +
                  ("policy does not allow " + sender + " to send files to " + recipient);
      continue;
    }
    auto& target = *endpoint->second;
    auto delivered = DeliverToInbox(file.get(), target.spec.persistent_dir, target.spec.host_uid,
                                    sender, frame.second, limits_.max_file_bytes);
    if (!delivered) {
      failures += (failures.empty() ? "" : "; ") + (recipient + ": " + delivered.error().message);
      continue;
    }
    ++target.stats.files_received;
    if (Connection* connection = Primary(recipient)) {
      if (!Enqueue(*connection, Frame{FrameType::kFile,
                                      0,
                                      0,
                                      sender,
                                      frame.second,
                                      {},
                                      "/data/" + delivered->relative_path})) {
        ++target.stats.messages_dropped;
      }
    }
  }
  if (failures.empty()) {
    Enqueue(from, Frame{FrameType::kOk, frame.request_id, 0, "", "", {}, ""});
  } else {
    Refuse(from, frame.request_id, ErrorCode::kForbidden, failures);
  }
}

void Broker::Refuse(Connection& to, std::uint32_t request_id, ErrorCode code,
                    const std::string& text) {
  Enqueue(to,
          Frame{FrameType::kError, request_id, static_cast<std::uint16_t>(code), "", "", {}, text});
}

bool Broker::Enqueue(Connection& to, const Frame& frame) {
  std::size_t before = to.out.size();
  EncodeFrame(frame, to.out);
  // Errors and acknowledgements may exceed the bound slightly: they are small
  // and a client that stops reading loses nothing else by them.
  bool control = frame.type == FrameType::kError || frame.type == FrameType::kOk;
  if (!control && to.Queued() > limits_.queue_bytes) {
    to.out.resize(before);
    return false;
  }
  if (control && to.Queued() > 2 * limits_.queue_bytes) {
    // It keeps sending but never reads even its errors: cut it off.
    to.out.resize(before);
    ++to.endpoint->stats.overflowed;
    Close(to);
    return false;
  }
  if (!to.dirty) {
    to.dirty = true;
    dirty_.push_back(&to);
  }
  return true;
}

void Broker::Flush(Connection& connection) {
  while (connection.Queued() > 0) {
    ssize_t n = ::send(connection.fd.get(), connection.out.data() + connection.out_offset,
                       connection.Queued(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      connection.out_offset += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!connection.want_write) {
        epoll_event event{};
        event.events = EPOLLIN | EPOLLOUT;
        event.data.fd = connection.fd.get();
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, connection.fd.get(), &event);
        connection.want_write = true;
      }
      break;
    }
    Close(connection);
    return;
  }
  if (connection.Queued() == 0) {
    connection.out.clear();
    connection.out_offset = 0;
    if (connection.want_write) {
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.fd = connection.fd.get();
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, connection.fd.get(), &event);
      connection.want_write = false;
    }
  } else if (connection.out_offset > (1u << 20)) {
    connection.out.erase(0, connection.out_offset);
    connection.out_offset = 0;
  }
}

void Broker::FlushDirty() {
  for (Connection* connection : dirty_) {
    connection->dirty = false;
    if (!connection->closing) Flush(*connection);
  }
  dirty_.clear();
}

void Broker::Close(Connection& connection) {
  if (connection.closing) return;
  connection.closing = true;
  for (const auto& topic : connection.topics) std::erase(subscribers_[topic], &connection);
  auto& peers = connection.endpoint->connections;
  std::erase(peers, &connection);
  // Requests it made can no longer be answered.
  for (auto& [name, endpoint] : endpoints_) {
    std::erase_if(endpoint->pending, [&](const auto& entry) {
      return entry.second.requester_connection == connection.id;
    });
  }
  to_close_.push_back(connection.fd.get());
}

void Broker::CloseMarked() {
  for (int fd : to_close_) {
    std::erase(dirty_, connections_[fd].get());
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    connections_.erase(fd);
  }
  to_close_.clear();
}

Broker::Connection* Broker::Primary(const std::string& endpoint) {
  auto found = endpoints_.find(endpoint);
  if (found == endpoints_.end() || found->second->connections.empty()) return nullptr;
  return found->second->connections.front();
}

}  // namespace custos::bus
