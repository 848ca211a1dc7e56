#include "sandbox/nftables.h"

#include <nlohmann/json.hpp>

#include "sandbox/netns.h"

namespace custos {

Status AddDropChain(const std::string& netns_path, const std::string& hook,
                    const std::string& device, const std::string& chain) {
  std::string table = std::string("netdev ") + kGuardTable;
  std::string script = "add table " + table + "\n" + "add chain " + table + " " + chain +
                       " { type filter hook " + hook + " device \"" + device +
                       "\" priority -500; policy drop; }\n" + "add rule " + table + " " + chain +
                       " counter drop\n";
  auto result = RunInNetns(netns_path, {"nft", script});
  if (!result) return result.error();
  return {};
}

Status DeleteChain(const std::string& netns_path, const std::string& chain) {
  auto result = RunInNetns(
      netns_path, {"nft", "delete chain netdev " + std::string(kGuardTable) + " " + chain});
  if (!result) return result.error();
  return {};
}

Result<std::uint64_t> DroppedPackets(const std::string& netns_path, const std::string& chain) {
  auto output =
      RunInNetns(netns_path, {"nft", "--json", "list", "chain", "netdev", kGuardTable, chain});
  if (!output) return output.error();
  auto document = nlohmann::json::parse(*output, nullptr, false);
  if (document.is_discarded()) return Error{"nft printed unreadable JSON"};
  for (const auto& item : document.value("nftables", nlohmann::json::array())) {
    if (!item.contains("rule")) continue;
    for (const auto& expression : item["rule"].value("expr", nlohmann::json::array())) {
      if (expression.contains("counter")) return expression["counter"].value("packets", 0ull);
    }
  }
  return Error{"no counter in chain " + chain};
}

}  // namespace custos
