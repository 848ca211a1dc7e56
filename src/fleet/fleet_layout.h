// The fleet folder (`custos fleet init --dir DIR`) and how it is made.
//   DIR/                 0700; also the certificate authority's folder
//     root/ issuing/ server/ chain.pem crl.pem   (crypto/authority.h)
//     fleet.db           the SQLite store (WAL)
//     master.key         32 bytes, 0600: wraps every sensor's data key
//     admin.token.sha256 0600: hex SHA-256 of the admin API token
//     admin.token        0600, only with --save-token: the token itself, for
//                        a `custos` CLI run on the fleet host (--fleet-dir)
// Functions are thread-safe; InitFleet must not run twice on one folder.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"

namespace custos::fleet {

struct FleetPaths {
  explicit FleetPaths(const std::filesystem::path& dir);
  std::filesystem::path dir, database, master_key, admin_token_hash, admin_token;
  std::filesystem::path root_certificate, chain, crl, server_certificate, server_key;
};

struct FleetInitOptions {
  std::filesystem::path dir;
  // DNS names and IP addresses the server certificate names (at least one).
  // localhost and 127.0.0.1 are added, so a CLI on the fleet host can reach it.
  std::vector<std::string> addresses;
  std::string name = "Custos Fleet";  // prefix of the CA names
  bool save_admin_token = false;      // also write DIR/admin.token
};

// Creates DIR (refused if it exists) with the CA, the store, the master key
// and a new admin token, which it returns so the caller can show it once.
// A failure removes the half-made folder.
Result<std::string> InitFleet(const FleetInitOptions& options);

// The stored hash, for the server to check bearer tokens against.
Result<std::string> ReadAdminTokenHash(const FleetPaths& paths);

// Splits "a,b" into names, trimming blanks; true when `text` is an IP address.
std::vector<std::string> SplitList(const std::string& text);
bool IsIpAddressText(const std::string& text);

}  // namespace custos::fleet
