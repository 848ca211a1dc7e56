#include "bus/frame.h"

namespace custos::bus {
namespace {

void PutU16(std::string& out, std::uint16_t value) {
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value & 0xff));
}

void PutU32(std::string& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((value >> shift) & 0xff));
}

void PutString(std::string& out, std::string_view text) {
  PutU16(out, static_cast<std::uint16_t>(text.size()));
  out.append(text);
}

std::uint16_t GetU16(const unsigned char* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

std::uint32_t GetU32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}

// Walks a body with bounds checks; any overrun marks it failed.
class BodyReader {
 public:
  explicit BodyReader(std::string_view body) : body_(body) {}
  bool U16(std::uint16_t& value) {
    if (body_.size() - at_ < 2) return false;
    value = GetU16(reinterpret_cast<const unsigned char*>(body_.data() + at_));
    at_ += 2;
    return true;
  }
  bool U32(std::uint32_t& value) {
    if (body_.size() - at_ < 4) return false;
    value = GetU32(reinterpret_cast<const unsigned char*>(body_.data() + at_));
    at_ += 4;
    return true;
  }
  bool String(std::string& value) {
    std::uint16_t length = 0;
    if (!U16(length) || length > kMaxNameLength || body_.size() - at_ < length) return false;
    value.assign(body_.data() + at_, length);
    at_ += length;
    return true;
  }
  std::string_view Rest() const { return body_.substr(at_); }

 private:
  std::string_view body_;
  std::size_t at_ = 0;
};

void PutHeader(std::string& out, std::size_t body_size, FrameType type) {
  PutU32(out, static_cast<std::uint32_t>(body_size));
  out.push_back(static_cast<char>(kVersion));
  out.push_back(static_cast<char>(type));
  PutU16(out, 0);
}

}  // namespace

void EncodeFrame(const Frame& frame, std::string& out) {
  std::size_t body =
      4 + 2 + 2 + frame.first.size() + 2 + frame.second.size() + 2 + frame.payload.size();
  for (const auto& item : frame.list) body += 2 + item.size();
  out.reserve(out.size() + kHeaderSize + body);
  PutHeader(out, body, frame.type);
  PutU32(out, frame.request_id);
  PutU16(out, frame.code);
  PutString(out, frame.first);
  PutString(out, frame.second);
  PutU16(out, static_cast<std::uint16_t>(frame.list.size()));
  for (const auto& item : frame.list) PutString(out, item);
  out.append(frame.payload);
}

void EncodeEvent(std::string_view topic, std::string_view sender, std::string_view payload,
                 std::string& out) {
  std::size_t body = 4 + 2 + 2 + topic.size() + 2 + sender.size() + 2 + payload.size();
  PutHeader(out, body, FrameType::kEvent);
  PutU32(out, 0);
  PutU16(out, 0);
  PutString(out, topic);
  PutString(out, sender);
  PutU16(out, 0);
  out.append(payload);
}

DecodeResult DecodeFrame(std::string_view input, std::uint32_t max_frame, Frame& frame,
                         bool copy_payload) {
  DecodeResult result;
  if (input.size() < kHeaderSize) return result;
  const auto* header = reinterpret_cast<const unsigned char*>(input.data());
  std::uint32_t length = GetU32(header);
  auto invalid = [&](const std::string& why) {
    result.status = DecodeStatus::kInvalid;
    result.error = why;
    return result;
  };
  if (length > max_frame) {
    return invalid("frame of " + std::to_string(length) + " bytes exceeds the limit of " +
                   std::to_string(max_frame));
  }
  if (header[4] != kVersion)
    return invalid("unsupported protocol version " + std::to_string(header[4]));
  if (header[5] < static_cast<std::uint8_t>(FrameType::kHello) ||
      header[5] > static_cast<std::uint8_t>(FrameType::kSettings)) {
    return invalid("unknown frame type " + std::to_string(header[5]));
  }
  if (GetU16(header + 6) != 0) return invalid("reserved header bits are set");
  if (input.size() - kHeaderSize < length) return result;

  BodyReader body(input.substr(kHeaderSize, length));
  frame.type = static_cast<FrameType>(header[5]);
  frame.list.clear();
  std::uint16_t count = 0;
  if (!body.U32(frame.request_id) || !body.U16(frame.code) || !body.String(frame.first) ||
      !body.String(frame.second) || !body.U16(count) || count > kMaxListLength) {
    return invalid("frame body is truncated or a field is too long");
  }
  for (std::uint16_t i = 0; i < count; ++i) {
    std::string item;
    if (!body.String(item)) return invalid("frame list is truncated or an entry is too long");
    frame.list.push_back(std::move(item));
  }
  frame.payload_view = body.Rest();
  if (copy_payload) {
    frame.payload.assign(frame.payload_view);
  } else {
    frame.payload.clear();
  }
  result.status = DecodeStatus::kFrame;
  result.consumed = kHeaderSize + length;
  return result;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

bool IsValidFileName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength || name.front() == '.') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

}  // namespace custos::bus
