// Who may talk to whom on the bus: (sender, recipient, message type) triples
// for direct messages (type "file" covers file distribution), and per
// instrument the topics it may publish and subscribe to. Built from the
// sensor configuration; everything not listed is refused.
#pragma once

#include <map>
#include <set>
#include <string>
#include <tuple>

namespace custos::bus {

inline constexpr const char* kFileMessageType = "file";

struct BusPolicy {
  std::set<std::tuple<std::string, std::string, std::string>> messages;
  std::map<std::string, std::set<std::string>> publish;
  std::map<std::string, std::set<std::string>> subscribe;

  bool AllowsMessage(const std::string& from, const std::string& to,
                     const std::string& type) const {
    return messages.contains({from, to, type});
  }
  bool AllowsPublish(const std::string& who, const std::string& topic) const {
    auto found = publish.find(who);
    return found != publish.end() && found->second.contains(topic);
  }
  bool AllowsSubscribe(const std::string& who, const std::string& topic) const {
    auto found = subscribe.find(who);
    return found != subscribe.end() && found->second.contains(topic);
  }
};

}  // namespace custos::bus
