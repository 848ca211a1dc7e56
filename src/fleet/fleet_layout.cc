#include "fleet/fleet_layout.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/files.h"
#include "common/unique_fd.h"
#include "crypto/authority.h"
#include "crypto/token.h"
#include "fleet/data_keys.h"
#include "fleet/fleet_store.h"

namespace custos::fleet {
namespace {

namespace fs = std::filesystem;

// Writes a new 0600 file; refuses to replace anything.
Status WriteSecretFile(const fs::path& path, const std::string& content) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("cannot create " + path.string());
  std::size_t written = 0;
  while (written < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("cannot write " + path.string());
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + path.string());
  return {};
}

// Removes the folder InitFleet made unless the init finished.
class RemoveUnlessKept {
 public:
  explicit RemoveUnlessKept(fs::path dir) : dir_(std::move(dir)) {}
  ~RemoveUnlessKept() {
    if (dir_.empty()) return;
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  void Keep() { dir_.clear(); }

 private:
  fs::path dir_;
};

Status Init(const FleetInitOptions& options, const FleetPaths& paths, std::string& token) {
  crypto::AuthorityOptions authority;
  authority.name = options.name;
  std::vector<std::string> names = options.addresses;
  names.push_back("localhost");
  names.push_back("127.0.0.1");
  for (const std::string& name : names) {
    auto& list = IsIpAddressText(name) ? authority.server_ip_addresses : authority.server_dns_names;
    if (std::find(list.begin(), list.end(), name) == list.end()) list.push_back(name);
  }
  CUSTOS_TRY(crypto::InitAuthority(paths.dir, authority));
  auto store = OpenSqliteFleetStore(paths.database);
  if (!store.ok()) return store.error();
  CUSTOS_TRY(CreateMasterKeyFile(paths.master_key));
  auto secret = crypto::GenerateEnrollmentToken();
  if (!secret.ok()) return secret.error();
  CUSTOS_TRY(WriteSecretFile(paths.admin_token_hash, Sha256Hex(*secret) + "\n"));
  if (options.save_admin_token) CUSTOS_TRY(WriteSecretFile(paths.admin_token, *secret + "\n"));
  token = *secret;
  return {};
}

}  // namespace

FleetPaths::FleetPaths(const fs::path& fleet_dir)
    : dir(fleet_dir),
      database(fleet_dir / "fleet.db"),
      master_key(fleet_dir / "master.key"),
      admin_token_hash(fleet_dir / "admin.token.sha256"),
      admin_token(fleet_dir / "admin.token"),
      root_certificate(fleet_dir / "root" / "root.crt"),
      chain(fleet_dir / "chain.pem"),
      crl(fleet_dir / "crl.pem"),
      server_certificate(fleet_dir / "server" / "server.crt"),
      server_key(fleet_dir / "server" / "server.key") {}

Result<std::string> InitFleet(const FleetInitOptions& options) {
  if (options.dir.empty()) return Error{"fleet init needs --dir"};
  if (options.addresses.empty()) return Error{"fleet init needs at least one --address"};
  FleetPaths paths(options.dir);
  // Parents as mkdir -p would make them (a fresh /var/lib/custos); the fleet
  // folder itself must be new.
  if (paths.dir.has_parent_path()) CUSTOS_TRY(MakeDirectories(paths.dir.parent_path(), 0755));
  // mkdir fails on anything already there (file, folder or symlink).
  if (::mkdir(paths.dir.c_str(), 0700) != 0) {
    if (errno == EEXIST) return Error{paths.dir.string() + " already exists; pick a new folder"};
    return ErrnoError("cannot create " + paths.dir.string());
  }
  RemoveUnlessKept cleanup(paths.dir);
  std::string token;
  if (auto made = Init(options, paths, token); !made.ok()) {
    return Context("fleet init " + paths.dir.string(), made.error());
  }
  cleanup.Keep();
  return token;
}

Result<std::string> ReadAdminTokenHash(const FleetPaths& paths) {
  struct stat status {};
  if (::lstat(paths.admin_token_hash.c_str(), &status) != 0) {
    return ErrnoError("cannot read " + paths.admin_token_hash.string());
  }
  if (!S_ISREG(status.st_mode) || (status.st_mode & 077) != 0) {
    return Error{paths.admin_token_hash.string() + " must be a file only its owner can read"};
  }
  auto text = ReadFile(paths.admin_token_hash);
  if (!text.ok()) return text.error();
  std::string hash = *text;
  while (!hash.empty() && (hash.back() == '\n' || hash.back() == ' ')) hash.pop_back();
  bool hex = hash.size() == 64 && std::all_of(hash.begin(), hash.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
             });
  if (!hex) return Error{paths.admin_token_hash.string() + " does not hold a SHA-256 in hex"};
  return hash;
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) items.push_back(item);
    start = end + 1;
  }
  return items;
}

bool IsIpAddressText(const std::string& text) {
  unsigned char buffer[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, text.c_str(), buffer) == 1 ||
         ::inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

}  // namespace custos::fleet
