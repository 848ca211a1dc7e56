#include "sensor/yaml_reader.h"

#include <charconv>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/units.h"

namespace custos {
namespace {

nlohmann::json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      auto object = nlohmann::json::object();
      for (const auto& entry : node) object[entry.first.as<std::string>()] = ToJson(entry.second);
      return object;
    }
    case YAML::NodeType::Sequence: {
      auto array = nlohmann::json::array();
      for (const auto& item : node) array.push_back(ToJson(item));
      return array;
    }
    case YAML::NodeType::Scalar: {
      // Plain scalars that read as numbers or booleans keep that type; a
      // quoted "123" stays a string.
      const std::string& text = node.Scalar();
      if (node.Tag() == "?" && !text.empty()) {
        if (text == "true" || text == "false") return text == "true";
        const char* end = text.data() + text.size();
        long long integer = 0;
        auto parsed = std::from_chars(text.data(), end, integer);
        if (parsed.ec == std::errc() && parsed.ptr == end) return integer;
        double real = 0;
        auto parsed_real = std::from_chars(text.data(), end, real, std::chars_format::fixed);
        if (parsed_real.ec == std::errc() && parsed_real.ptr == end) return real;
      }
      return text;
    }
    default:
      return nullptr;
  }
}

}  // namespace

int YamlField::Line() const { return node_.IsDefined() ? node_.Mark().line + 1 : 0; }

Error YamlField::Fail(const std::string& problem) const {
  std::string where = file_;
  int line = Line();
  if (line > 0) {
    where += ':';  // appended piecewise: GCC 12 warns falsely on ":" + to_string()
    where += std::to_string(line);
  }
  return Error{where + ": " + (path_.empty() ? "document" : path_) + ": " + problem};
}

YamlField YamlField::Child(const std::string& key) const {
  std::string child_path = path_.empty() ? key : path_ + "." + key;
  if (!node_.IsMap()) return YamlField(YAML::Node(YAML::NodeType::Undefined), child_path, file_);
  const YAML::Node& const_node = node_;
  YAML::Node child = const_node[key];
  if (!child.IsDefined()) {
    // Keep the parent's position so errors on a missing field point near it.
    YamlField missing(YAML::Node(YAML::NodeType::Undefined), child_path, file_);
    return missing;
  }
  return YamlField(child, child_path, file_);
}

std::vector<YamlField> YamlField::Items() const {
  std::vector<YamlField> items;
  if (!node_.IsSequence()) return items;
  for (size_t i = 0; i < node_.size(); ++i) {
    items.emplace_back(node_[i], path_ + "[" + std::to_string(i) + "]", file_);
  }
  return items;
}

Status YamlField::RequireMap() const {
  if (!node_.IsMap()) return Fail("expected a map of fields");
  return {};
}

Status YamlField::OnlyKeys(const std::set<std::string>& known) const {
  CUSTOS_TRY(RequireMap());
  for (const auto& entry : node_) {
    auto key = entry.first.as<std::string>();
    if (!known.contains(key)) {
      YamlField field(entry.first, path_.empty() ? key : path_ + "." + key, file_);
      std::string names;
      for (const auto& name : known) names += (names.empty() ? "" : ", ") + name;
      return field.Fail("unknown field (expected one of: " + names + ")");
    }
  }
  return {};
}

Result<std::string> YamlField::String() const {
  if (!present()) return Fail("is required");
  if (!node_.IsScalar()) return Fail("expected a text value");
  return node_.Scalar();
}

Result<std::string> YamlField::StringOr(const std::string& fallback) const {
  if (!present()) return fallback;
  return String();
}

Result<std::vector<std::string>> YamlField::StringList() const {
  std::vector<std::string> values;
  if (!present()) return values;
  if (!node_.IsSequence()) return Fail("expected a list");
  for (const auto& item : Items()) {
    auto value = item.String();
    if (!value) return value.error();
    values.push_back(*value);
  }
  return values;
}

Result<std::uint64_t> YamlField::Unsigned(std::uint64_t fallback, std::uint64_t max) const {
  if (!present()) return fallback;
  auto text = String();
  if (!text) return text.error();
  auto number = ParseSize(*text);
  if (!number || text->find_first_not_of("0123456789") != std::string::npos) {
    return Fail("expected a whole number, got '" + *text + "'");
  }
  if (*number > max) return Fail("must be at most " + std::to_string(max));
  return *number;
}

Result<double> YamlField::Number(double fallback) const {
  if (!present()) return fallback;
  auto text = String();
  if (!text) return text.error();
  try {
    size_t used = 0;
    double value = std::stod(*text, &used);
    if (used != text->size()) throw std::invalid_argument(*text);
    return value;
  } catch (const std::exception&) {
    return Fail("expected a number, got '" + *text + "'");
  }
}

Result<bool> YamlField::Bool(bool fallback) const {
  if (!present()) return fallback;
  auto text = String();
  if (!text) return text.error();
  if (*text == "true") return true;
  if (*text == "false") return false;
  return Fail("expected true or false, got '" + *text + "'");
}

Result<std::chrono::milliseconds> YamlField::Duration(std::chrono::milliseconds fallback) const {
  if (!present()) return fallback;
  auto text = String();
  if (!text) return text.error();
  auto duration = ParseDuration(*text);
  if (!duration) return Fail("expected a duration like 30s or 7d: " + duration.error().message);
  return *duration;
}

Result<std::uint64_t> YamlField::Size(std::uint64_t fallback) const {
  if (!present()) return fallback;
  auto text = String();
  if (!text) return text.error();
  auto size = ParseSize(*text);
  if (!size) return Fail("expected a size like 64M: " + size.error().message);
  return *size;
}

Result<std::string> YamlField::AsJson() const {
  if (!present()) return std::string("{}");
  return ToJson(node_).dump();
}

namespace {

constexpr size_t kMaxDocumentBytes = 1 << 20;
constexpr int kMaxFlowNesting = 64;

// yaml-cpp parses recursively; refuse documents that would nest deep enough
// to exhaust the stack before handing them over.
Status CheckShape(const std::string& text, const std::string& name) {
  if (text.size() > kMaxDocumentBytes) return Error{name + ": larger than 1 MiB"};
  int depth = 0;
  for (char c : text) {
    if (c == '[' || c == '{') {
      if (++depth > kMaxFlowNesting) return Error{name + ": collections nested deeper than 64"};
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return {};
}

}  // namespace

Result<YamlField> LoadYamlText(const std::string& text, const std::string& name) {
  CUSTOS_TRY(CheckShape(text, name));
  try {
    return YamlField(YAML::Load(text), "", name);
  } catch (const YAML::Exception& e) {
    return Error{name + ":" + std::to_string(e.mark.line + 1) + ":" +
                 std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg};
  }
}

Result<YamlField> LoadYamlFile(const std::string& file) {
  auto text = ReadFile(file);
  if (!text) return Error{"cannot read " + file};
  return LoadYamlText(*text, file);
}

}  // namespace custos
