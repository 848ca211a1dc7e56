// The message bus broker inside sensord. Each instrument has its own
// listening unix socket (an endpoint), so the broker knows who speaks on
// every connection and stamps that name as the sender: no frame a client
// sends can name its sender. The broker runs on a thread of its own, so a
// slow container operation in sensord never delays the bus; its public
// methods are thread-safe.
//
// Back-pressure: every connection has a bounded output queue. An event for
// a subscriber whose queue is full is dropped and counted per subscriber and
// topic; a direct message to a full queue is refused with an error to its
// sender. Nothing is dropped without a count.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bus/bus_policy.h"
#include "bus/frame.h"
#include "common/unique_fd.h"
#include "custos/result.h"

namespace custos::bus {

struct BrokerLimits {
  std::uint32_t max_frame = kDefaultMaxFrame;
  std::size_t queue_bytes = 4u << 20;        // per connection
  std::uint64_t max_file_bytes = 64u << 20;  // per distributed file
  std::size_t connections_per_endpoint = 8;
  std::size_t pending_requests = 1024;  // per recipient
};

struct EndpointSpec {
  std::string name;
  std::string socket_path;  // the broker creates it, owned by host_uid, mode 0600
  std::uint32_t host_uid = 0;
  std::string persistent_dir;  // the inbox for distributed files lives here
  std::string settings_json = "{}";
};

struct TopicCounters {
  std::uint64_t published = 0;  // by this endpoint
  std::uint64_t delivered = 0;  // to this endpoint
  std::uint64_t dropped = 0;    // meant for this endpoint, queue full
};

struct EndpointStats {
  std::size_t connections = 0;
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_received = 0;
  std::uint64_t refused = 0;  // frames refused by policy
  std::uint64_t messages_dropped =
      0;                         // messages, replies, file notices, settings lost to a full queue
  std::uint64_t overflowed = 0;  // connections closed for not reading even their errors
  std::uint64_t malformed = 0;   // connections closed for a bad frame
  std::uint64_t files_received = 0;
  std::size_t queued_bytes = 0;
  std::map<std::string, TopicCounters> topics;
};

// Receives every published event (the uplink of a later issue; the event
// journal for now). Called on the broker thread: it must not block.
using PlatformSink =
    std::function<void(std::string_view topic, std::string_view sender, std::string_view payload)>;

class Broker {
 public:
  static Result<std::unique_ptr<Broker>> Start(const BrokerLimits& limits);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  Status AddEndpoint(const EndpointSpec& spec);
  void RemoveEndpoint(const std::string& name);
  void SetSettings(const std::string& name, const std::string& settings_json);
  void SetPolicy(BusPolicy policy);
  void SetPlatformSink(PlatformSink sink);
  std::map<std::string, EndpointStats> Stats() const;

 private:
  struct Connection;
  struct Endpoint;

  explicit Broker(const BrokerLimits& limits);
  void Loop();
  void Accept(Endpoint& endpoint);
  void ReadFrom(Connection& connection);
  void Dispatch(Connection& connection, Frame& frame, std::vector<UniqueFd>& fds);
  void Publish(Connection& from, const Frame& frame);
  void SendDirect(Connection& from, const Frame& frame);
  void Reply(Connection& from, const Frame& frame);
  void Subscribe(Connection& from, const Frame& frame);
  void SendFile(Connection& from, const Frame& frame, std::vector<UniqueFd>& fds);
  void Refuse(Connection& to, std::uint32_t request_id, ErrorCode code, const std::string& text);
  // Queues an encoded frame unless the queue would pass its bound.
  bool Enqueue(Connection& to, const Frame& frame);
  void Flush(Connection& connection);
  void FlushDirty();
  void Close(Connection& connection);
  void CloseMarked();
  Connection* Primary(const std::string& endpoint);
  void Watch(int fd, std::uint32_t events);
  std::uint32_t NextToken();

  BrokerLimits limits_;
  mutable std::mutex mutex_;
  UniqueFd epoll_;
  UniqueFd wake_;
  std::thread thread_;
  bool stopping_ = false;
  BusPolicy policy_;
  PlatformSink sink_;
  std::map<std::string, std::unique_ptr<Endpoint>> endpoints_;
  std::unordered_map<int, Endpoint*> listeners_;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
  std::unordered_map<std::string, std::vector<Connection*>> subscribers_;
  std::vector<Connection*> dirty_;
  std::vector<int> to_close_;
  std::uint64_t next_connection_id_ = 1;
  std::uint32_t next_token_ = 0;
};

}  // namespace custos::bus
