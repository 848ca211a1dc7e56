// Backend-independent parts of the fleet store: token hashing and the
// fields extracted from an event body at insert.
#include "fleet/fleet_store.h"

#include <openssl/evp.h>

#include <nlohmann/json.hpp>

namespace custos::fleet {
namespace {

// Deep nesting is refused before it costs anything: sensors may be
// compromised, and their instruments' output is hostile input here.
constexpr int kMaxJsonDepth = 64;

// Walks a document without building it, noting the top-level "event_type"
// and "timestamp" strings.
class FieldScanner {
 public:
  using json = nlohmann::json;

  bool null() { return Scalar(); }
  bool boolean(bool) { return Scalar(); }
  bool number_integer(json::number_integer_t) { return Scalar(); }
  bool number_unsigned(json::number_unsigned_t) { return Scalar(); }
  bool number_float(json::number_float_t, const json::string_t&) { return Scalar(); }
  bool binary(json::binary_t&) { return Scalar(); }
  bool string(json::string_t& value) {
    if (depth_ == 1 && top_is_object_) {
      if (key_ == "event_type") event_type = value;
      if (key_ == "timestamp") timestamp = value;
    }
    return Scalar();
  }
  bool start_object(std::size_t) { return Open(true); }
  bool start_array(std::size_t) { return Open(false); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }
  bool key(json::string_t& value) {
    if (depth_ == 1) key_ = value;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

  bool top_is_object() const { return top_is_object_; }
  std::optional<std::string> event_type;
  std::optional<std::string> timestamp;

 private:
  bool Scalar() {
    if (depth_ == 1) key_.clear();
    return true;
  }
  bool Open(bool object) {
    if (depth_ == 0) top_is_object_ = object;
    if (depth_ == 1) key_.clear();
    return ++depth_ <= kMaxJsonDepth;
  }
  bool Close() {
    --depth_;
    return true;
  }
  int depth_ = 0;
  bool top_is_object_ = false;
  std::string key_;
};

bool Scan(std::string_view text, FieldScanner& scanner) {
  return nlohmann::json::sax_parse(text.begin(), text.end(), &scanner);
}

// Reads exactly `width` digits at `pos`; -1 if they are not all digits.
int Digits(std::string_view text, std::size_t pos, std::size_t width) {
  if (pos + width > text.size()) return -1;
  int value = 0;
  for (std::size_t i = pos; i < pos + width; ++i) {
    if (text[i] < '0' || text[i] > '9') return -1;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xF];
  }
  return hex;
}

std::optional<TimePoint> ParseEveTimestamp(std::string_view text) {
  using namespace std::chrono;
  // YYYY-MM-DDTHH:MM:SS
  if (text.size() < 19 || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != ' ') || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  int year = Digits(text, 0, 4), month = Digits(text, 5, 2), day = Digits(text, 8, 2);
  int hour = Digits(text, 11, 2), minute = Digits(text, 14, 2), second = Digits(text, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
      second < 0 || second > 60) {
    return std::nullopt;
  }
  year_month_day date{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                      std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;
  std::size_t pos = 19;
  microseconds fraction{0};
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::int64_t scale = 100000;
    std::size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      fraction += microseconds((text[pos] - '0') * scale);
      scale /= 10;  // digits past microseconds are dropped
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  minutes offset{0};
  if (pos < text.size()) {
    char sign = text[pos];
    if (sign == 'Z' && pos + 1 == text.size()) {
      pos = text.size();
    } else if (sign == '+' || sign == '-') {
      int zone_hours = Digits(text, pos + 1, 2);
      std::size_t minutes_at = pos + 3;
      if (minutes_at < text.size() && text[minutes_at] == ':') ++minutes_at;
      int zone_minutes = Digits(text, minutes_at, 2);
      if (zone_hours < 0 || zone_hours > 23 || zone_minutes < 0 || zone_minutes > 59 ||
          minutes_at + 2 != text.size()) {
        return std::nullopt;
      }
      offset = hours(zone_hours) + minutes(zone_minutes);
      if (sign == '-') offset = -offset;
    } else {
      return std::nullopt;
    }
  }
  auto local = sys_days{date} + hours(hour) + minutes(minute) + seconds(second) + fraction;
  return time_point_cast<system_clock::duration>(local - offset);
}

bool IsBoundedJson(std::string_view text) {
  FieldScanner scanner;
  return Scan(text, scanner);
}

EventFields ExtractEventFields(std::string_view body) {
  FieldScanner scanner;
  EventFields fields;
  if (!Scan(body, scanner) || !scanner.top_is_object()) {
    fields.event_type = kInvalidEventType;
    nlohmann::json wrapped = {{"event_type", kInvalidEventType}, {"raw", std::string(body)}};
    fields.body = wrapped.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return fields;
  }
  fields.body = std::string(body);
  if (scanner.event_type) fields.event_type = *scanner.event_type;
  if (scanner.timestamp) fields.event_time = ParseEveTimestamp(*scanner.timestamp);
  return fields;
}

}  // namespace custos::fleet
