// The bus wire format, version 1 (docs/bus.md). Every frame is an 8-byte
// header (u32 body length, u8 version, u8 type, u16 zero; big-endian) and a
// body with one layout for all types, so there is one parser to get right:
//   u32 request_id, u16 code, str16 first, str16 second,
//   u16 count + count x str16 list, then the payload (the rest).
// Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "custos/result.h"

namespace custos::bus {

inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 8;
inline constexpr std::uint32_t kDefaultMaxFrame = 1 << 20;
inline constexpr std::size_t kMaxNameLength = 128;
inline constexpr std::size_t kMaxListLength = 64;

enum class FrameType : std::uint8_t {
  kHello = 1,         // broker->client: first = the client's instrument name
  kSubscribe = 2,     // client->broker: first = topic
  kPublish = 3,       // client->broker: first = topic, payload = event
  kEvent = 4,         // broker->client: first = topic, second = sender, payload
  kSend = 5,          // client->broker: first = recipient, second = message type, payload;
                      //   request_id != 0 asks for a reply
  kMessage = 6,       // broker->client: first = sender, second = message type, payload
  kReply = 7,         // client->broker: first = the requester, request_id as received
  kResponse = 8,      // broker->client: first = the replier, request_id, payload
  kError = 9,         // broker->client: request_id, code, payload = text
  kOk = 10,           // broker->client: request_id
  kFileSend = 11,     // client->broker, with one descriptor: second = file name, list = recipients
  kFile = 12,         // broker->client: first = sender, second = file name, payload = path
  kGetSettings = 13,  // client->broker: request_id
  kSettings = 14,     // broker->client: request_id, payload = JSON
};

// Error codes carried by kError frames.
enum class ErrorCode : std::uint16_t {
  kMalformed = 1,  // the frame could not be parsed; the connection is closed
  kForbidden = 2,  // policy does not allow it
  kUnknown = 3,    // no such recipient or request
  kBusy = 4,       // the recipient's queue is full
  kFailed = 5,     // a platform service failed
};

struct Frame {
  FrameType type = FrameType::kHello;
  std::uint32_t request_id = 0;
  std::uint16_t code = 0;
  std::string first;
  std::string second;
  std::vector<std::string> list;
  std::string payload;
  // Set by DecodeFrame: the payload inside the decoded input, valid while
  // that input is. Copied into `payload` unless the caller opts out.
  std::string_view payload_view;
};

// Appends the encoded frame to `out`.
void EncodeFrame(const Frame& frame, std::string& out);
// Encodes an event without building a Frame (the broker's hot path).
void EncodeEvent(std::string_view topic, std::string_view sender, std::string_view payload,
                 std::string& out);

enum class DecodeStatus { kFrame, kNeedMore, kInvalid };

struct DecodeResult {
  DecodeStatus status = DecodeStatus::kNeedMore;
  std::size_t consumed = 0;  // bytes of `input` the frame used
  std::string error;         // why, for kInvalid
};

// Decodes one frame from the front of `input`, checking every length against
// what is there and against `max_frame`.
DecodeResult DecodeFrame(std::string_view input, std::uint32_t max_frame, Frame& frame,
                         bool copy_payload = true);

// The largest payload whose frame still fits `max_frame` with every field at
// its longest, so what the broker forwards never exceeds the limit.
constexpr std::size_t MaxPayload(std::uint32_t max_frame) {
  return max_frame - (4 + 2 + 2 * (2 + kMaxNameLength) + 2);
}

// Topics, instrument names and message types: 1-128 of [a-z0-9._-].
bool IsValidName(std::string_view name);
// File names handed between instruments: 1-128 of [A-Za-z0-9._-], not starting with '.'.
bool IsValidFileName(std::string_view name);

}  // namespace custos::bus
