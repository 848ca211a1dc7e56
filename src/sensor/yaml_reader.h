// Reads a YAML document field by field, turning every problem into an Error
// that names the file, line and field path ("sensor.yaml:12:
// instruments[1].limits.memory: ..."). Unknown fields are refused so a typo
// never silently falls back to a default.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"

namespace custos {

class YamlField {
 public:
  YamlField(YAML::Node node, std::string path, std::string file)
      : node_(std::move(node)), path_(std::move(path)), file_(std::move(file)) {}

  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }
  bool present() const { return node_.IsDefined() && !node_.IsNull(); }

  // A child of a map; absent children are returned as not present().
  YamlField Child(const std::string& key) const;
  std::vector<YamlField> Items() const;  // elements of a sequence

  Error Fail(const std::string& problem) const;
  // Refuses any key of this map that is not in `known`.
  Status OnlyKeys(const std::set<std::string>& known) const;
  Status RequireMap() const;

  Result<std::string> String() const;
  Result<std::string> StringOr(const std::string& fallback) const;
  Result<std::vector<std::string>> StringList() const;
  Result<std::uint64_t> Unsigned(std::uint64_t fallback, std::uint64_t max) const;
  Result<double> Number(double fallback) const;
  Result<bool> Bool(bool fallback) const;  // true or false
  Result<std::chrono::milliseconds> Duration(std::chrono::milliseconds fallback) const;
  Result<std::uint64_t> Size(std::uint64_t fallback) const;
  // The subtree as JSON text, for settings handed through to an instrument.
  Result<std::string> AsJson() const;

 private:
  int Line() const;

  YAML::Node node_;
  std::string path_;
  std::string file_;
};

// Parses a whole file; syntax errors name the line and column.
Result<YamlField> LoadYamlFile(const std::string& file);
Result<YamlField> LoadYamlText(const std::string& text, const std::string& name);

}  // namespace custos
