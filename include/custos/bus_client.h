// Instrument SDK: the client side of the sensor's message bus. An
// instrument connects to the socket the platform mounted for it
// (CUSTOS_BUS, /run/custos/bus/bus.sock), learns its own name from the
// broker, and then publishes events, subscribes to topics, sends direct
// messages and requests, answers requests, hands files to other instruments
// and reads its settings. The wire format is in docs/bus.md.
//
// One BusClient is one connection; it is not thread-safe. Frames that arrive
// while a call waits for its own answer are kept for Receive().
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "custos/result.h"

namespace custos::bus {
enum class FrameType : std::uint8_t;  // the wire format's, in src/bus/frame.h
}  // namespace custos::bus

namespace custos {

struct BusMessage {
  enum class Kind { kEvent, kMessage, kFile, kError };
  Kind kind = Kind::kEvent;
  std::string topic;    // events
  std::string sender;   // stamped by the broker; cannot be forged
  std::string type;     // direct messages: the message type; files: the file name
  std::string payload;  // events and messages: the body; files: the path in /data
  std::uint32_t request_id = 0;
  bool wants_reply = false;  // direct messages sent with Request()
};

class BusClient {
 public:
  static std::string DefaultPath();
  static Result<BusClient> Connect(const std::string& path = DefaultPath());

  BusClient(BusClient&& other) noexcept;
  BusClient& operator=(BusClient&& other) noexcept;
  BusClient(const BusClient&) = delete;
  BusClient& operator=(const BusClient&) = delete;
  ~BusClient();

  // This instrument's name, as the broker knows it.
  const std::string& name() const { return name_; }
  int fd() const { return fd_; }

  // Publishes an event. Buffered: call Flush() or any waiting call to send.
  // With auto_flush (the default) every event is written at once.
  Status Publish(std::string_view topic, std::string_view payload);
  Status Flush();
  void set_auto_flush(bool on) { auto_flush_ = on; }

  Status Subscribe(const std::string& topic,
                   std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // A one-way message; waits for the broker to accept it (or say why not).
  Status Send(const std::string& to, const std::string& type, std::string_view payload,
              std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // A message that wants an answer; returns the recipient's reply.
  Result<std::string> Request(const std::string& to, const std::string& type,
                              std::string_view payload,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5));
  Status Reply(const BusMessage& request, std::string_view payload);
  // Hands the file open at `fd` to the named instruments (a copy lands in
  // each one's /data/inbox); the sender never sees their storage.
  Status SendFile(int fd, const std::string& name, const std::vector<std::string>& recipients,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // This instrument's settings document (JSON: settings, retention_seconds, ...).
  Result<std::string> Settings(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // The next event, message, file notice or asynchronous error; nothing on timeout.
  Result<std::optional<BusMessage>> Receive(std::chrono::milliseconds timeout);

 private:
  explicit BusClient(int fd) : fd_(fd) {}
  // The broker's answer to one of our requests: OK, a reply or settings
  // (ok, payload), or an error (not ok, payload = its text).
  struct Answer {
    bool ok = false;
    std::string payload;
  };
  Status Write(const std::string& bytes, int pass_fd = -1);
  // Reads one frame (or times out) and files it; returns false on timeout.
  Result<bool> ReadOne(std::chrono::steady_clock::time_point deadline);
  // The answer's payload, or the broker's error as an Error.
  Result<std::string> WaitFor(std::uint32_t request_id, std::chrono::milliseconds timeout);
  // Sends one request frame and waits for its answer.
  Result<std::string> Call(bus::FrameType type, std::uint16_t code, const std::string& first,
                           const std::string& second, std::string_view payload,
                           std::chrono::milliseconds timeout);
  std::uint32_t NextId();
  Status Check(std::string_view name, std::string_view payload) const;

  int fd_ = -1;
  std::string name_;
  std::uint32_t next_request_ = 1;
  bool auto_flush_ = true;
  std::string out_;
  std::string in_;
  std::size_t in_offset_ = 0;  // bytes of in_ already decoded
  std::deque<BusMessage> inbox_;
  std::deque<std::pair<std::uint32_t, Answer>> answers_;
  std::set<std::uint32_t> outstanding_;  // request ids still awaited
};

}  // namespace custos
