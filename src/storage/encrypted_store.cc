#include "storage/encrypted_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <utility>
#include <vector>

#include "common/files.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "storage/instrument_storage.h"
#include "storage/tree_copy.h"

namespace custos::storage {
namespace {

namespace fs = std::filesystem;

constexpr char kInstrumentsDirectory[] = "instruments";
constexpr char kSpoolDirectory[] = "spool";
constexpr std::size_t kMaxNameLength = 200;  // leaves room for ".<name>.rekey"

Result<UniqueFd> OpenDirectoryAt(int dir_fd, const std::string& name, const std::string& what) {
  UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("cannot open " + what);
  return fd;
}

Result<bool> IsEmptyDirectory(int dir_fd, const std::string& what) {
  int listing_fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing_fd < 0) return ErrnoError("cannot open " + what);
  DIR* dir = ::fdopendir(listing_fd);
  if (dir == nullptr) {
    Error error = ErrnoError("cannot list " + what);
    ::close(listing_fd);
    return error;
  }
  bool empty = true;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(dir);
  return empty;
}

std::string RekeyName(const std::string& name) { return std::string(".") + name + ".rekey"; }

Status RemoveTree(const std::string& path) {
  std::error_code error;
  fs::remove_all(path, error);
  if (error) return Error{"cannot remove " + path + ": " + error.message()};
  return {};
}

// A leftover from an interrupted rotation: either a partial copy (the
// original is intact) or, after the swap, the old directory.
Status RemoveLeftover(const std::string& path) {
  std::error_code error;
  if (!fs::exists(fs::symlink_status(path, error))) return {};
  spdlog::warn("encrypted store: removing {} left by an interrupted key rotation", path);
  return RemoveTree(path);
}

Status SyncDirectory(int dir_fd, const std::string& what) {
  if (::fsync(dir_fd) != 0) return ErrnoError("cannot fsync " + what);
  return {};
}

}  // namespace

Result<std::unique_ptr<EncryptedStore>> EncryptedStore::Open(const StoreOptions& options,
                                                             SecretBytes data_key) {
  if (data_key.size() != kDataKeySize) {
    return Error{std::string("data key must be ") + std::to_string(kDataKeySize) + " bytes, not " +
                 std::to_string(data_key.size())};
  }
  std::error_code error;
  if (options.create_image_bytes > 0 && !fs::exists(options.source, error))
    CUSTOS_TRY(CreateVolumeImage(options.source, options.create_image_bytes));
  auto volume = EncryptedVolume::Open(options.source, options.mountpoint);
  if (!volume) return volume.error();
  return std::unique_ptr<EncryptedStore>(
      new EncryptedStore(std::move(*volume), std::move(data_key)));
}

EncryptedStore::~EncryptedStore() {
  if (!volume_.is_open()) return;
  auto closed = Close();
  if (!closed) spdlog::warn("encrypted store {}: {}", volume_.source(), closed.error().message);
}

Result<EncryptedStore::Place> EncryptedStore::InstrumentPlace(const std::string& instrument) {
  if (instrument.empty() || instrument.size() > kMaxNameLength ||
      instrument.find('/') != std::string::npos || instrument.find('\0') != std::string::npos ||
      instrument.front() == '.') {
    return Error{std::string("'") + instrument +
                 "' cannot name an instrument directory (1-200 characters, no '/', not "
                 "starting with '.')"};
  }
  return Place{kInstrumentsDirectory, instrument, std::string("custos instrument ") + instrument};
}

EncryptedStore::Place EncryptedStore::SpoolPlace() {
  return Place{"", kSpoolDirectory, "custos spool"};
}

std::string EncryptedStore::PathOf(const Place& place) const {
  if (place.parent == kInstrumentsDirectory) return PersistentDirectory(data_root(), place.name);
  return data_root() + "/" + place.Relative();
}

Result<KeyIdentifier> EncryptedStore::AddKey(const SecretBytes& data_key, const Place& place) {
  auto key = DeriveKey(data_key, place.info);
  if (!key) return key.error();
  auto identifier = AddEncryptionKey(volume_.root_fd(), *key);
  if (!identifier) return Context(place.Relative(), identifier.error());
  return identifier;
}

Result<std::string> EncryptedStore::Unlock(const std::string& instrument) {
  auto place = InstrumentPlace(instrument);
  if (!place) return place.error();
  return UnlockPlace(*place);
}

Result<std::string> EncryptedStore::UnlockSpool() { return UnlockPlace(SpoolPlace()); }

Result<std::string> EncryptedStore::UnlockPlace(const Place& place) {
  const std::string relative = place.Relative();
  const std::string path = PathOf(place);
  if (unlocked_.contains(relative)) return path;
  auto key = AddKey(data_key_, place);
  if (!key) return key.error();
  // Whatever goes wrong below, the key does not stay behind.
  auto fail = [&](Error error) -> Result<std::string> {
    (void)RemoveEncryptionKey(volume_.root_fd(), *key);
    return error;
  };

  const std::string parent_path =
      place.parent.empty() ? data_root() : data_root() + "/" + place.parent;
  // Root's and closed to everyone else, so no instrument can even list which
  // others exist (as PreparePersistentDirectory does without a store).
  if (auto made = MakeDirectories(parent_path, 0711); !made) return fail(made.error());
  auto parent = OpenDirectoryAt(AT_FDCWD, parent_path, parent_path);
  if (!parent) return fail(parent.error());
  if (auto removed = RemoveLeftover(parent_path + "/" + RekeyName(place.name)); !removed)
    return fail(removed.error());
  if (::mkdirat(parent->get(), place.name.c_str(), 0700) != 0 && errno != EEXIST)
    return fail(ErrnoError("cannot create " + path));
  auto dir = OpenDirectoryAt(parent->get(), place.name, path);
  if (!dir) return fail(dir.error());

  auto policy = GetEncryptionPolicy(dir->get());
  if (!policy) return fail(Context(path, policy.error()));
  if (!*policy) {
    auto empty = IsEmptyDirectory(dir->get(), path);
    if (!empty) return fail(empty.error());
    if (!*empty) {
      return fail(Error{path +
                        " exists unencrypted and holds files; refusing to use it (move its "
                        "contents away, let the store encrypt the empty directory, copy them "
                        "back)"});
    }
    auto set = SetEncryptionPolicy(dir->get(), *key);
    if (!set) return fail(Context(path, set.error()));
    if (auto synced = SyncDirectory(parent->get(), parent_path); !synced)
      return fail(synced.error());
  } else if (auto verified = VerifyEncryptionPolicy(dir->get(), *key, path); !verified) {
    return fail(verified.error());
  }
  unlocked_[relative] = *key;
  return path;
}

Status EncryptedStore::LockPlace(const std::string& relative, const KeyIdentifier& key) {
  auto removal = RemoveEncryptionKey(volume_.root_fd(), key);
  if (!removal) return Context(relative, removal.error());
  if (*removal == KeyRemoval::kFilesBusy) {
    return Error{relative +
                 ": key removed, but files still open stay readable until they are closed; "
                 "lock again after that"};
  }
  unlocked_.erase(relative);
  return {};
}

Status EncryptedStore::Lock(const std::string& instrument) {
  auto place = InstrumentPlace(instrument);
  if (!place) return place.error();
  auto found = unlocked_.find(place->Relative());
  if (found != unlocked_.end()) return LockPlace(found->first, found->second);
  return {};
}

Status EncryptedStore::LockAll() {
  std::vector<std::pair<std::string, KeyIdentifier>> keys(unlocked_.begin(), unlocked_.end());
  Status first;
  for (const auto& [relative, key] : keys) {
    auto locked = LockPlace(relative, key);
    if (!locked && first) first = locked;
  }
  return first;
}

Result<KeyStatus> EncryptedStore::InstrumentKeyStatus(const std::string& instrument) {
  auto place = InstrumentPlace(instrument);
  if (!place) return place.error();
  auto found = unlocked_.find(place->Relative());
  if (found != unlocked_.end()) return GetEncryptionKeyStatus(volume_.root_fd(), found->second);
  const std::string path = PathOf(*place);
  auto dir = OpenDirectoryAt(AT_FDCWD, path, path);
  if (!dir) return dir.error();
  auto policy = GetEncryptionPolicy(dir->get());
  if (!policy) return Context(path, policy.error());
  if (!*policy || (*policy)->version != 2)
    return Error{path + " is not encrypted with a v2 policy"};
  return GetEncryptionKeyStatus(volume_.root_fd(), (*policy)->key);
}

Status EncryptedStore::RotateKey(const std::string& instrument, const SecretBytes& new_data_key) {
  auto place = InstrumentPlace(instrument);
  if (!place) return place.error();
  return RotatePlace(*place, new_data_key);
}

Status EncryptedStore::RotatePlace(const Place& place, const SecretBytes& new_data_key) {
  const std::string relative = place.Relative();
  const std::string path = PathOf(place);
  const std::string parent_path =
      place.parent.empty() ? data_root() : data_root() + "/" + place.parent;
  const std::string rekey_name = RekeyName(place.name);
  const std::string rekey_path = parent_path + "/" + rekey_name;

  std::error_code status_error;
  if (!fs::exists(fs::symlink_status(path, status_error))) return {};  // nothing stored yet
  auto parent = OpenDirectoryAt(AT_FDCWD, parent_path, parent_path);
  if (!parent) return parent.error();
  auto opened = OpenDirectoryAt(parent->get(), place.name, path);
  if (!opened) return opened.error();
  UniqueFd dir = std::move(*opened);

  const bool was_unlocked = unlocked_.contains(relative);
  auto new_key = AddKey(new_data_key, place);
  if (!new_key) return new_key.error();
  auto policy = GetEncryptionPolicy(dir.get());
  if (!policy) return Context(path, policy.error());
  if (*policy && (*policy)->key == *new_key) {
    // Rotated already (this is a re-run after an interruption).
    CUSTOS_TRY(VerifyEncryptionPolicy(dir.get(), *new_key, path));
    CUSTOS_TRY(RemoveLeftover(rekey_path));
    if (was_unlocked) {
      unlocked_[relative] = *new_key;
      return {};
    }
    return LockPlace(relative, *new_key);
  }

  auto old_key = AddKey(data_key_, place);
  if (!old_key) return old_key.error();
  // Leaves the keys as they were before the call, whatever failed.
  auto fail = [&](Error error) -> Status {
    (void)RemoveTree(rekey_path);
    (void)RemoveEncryptionKey(volume_.root_fd(), *new_key);
    if (!was_unlocked) (void)RemoveEncryptionKey(volume_.root_fd(), *old_key);
    return Context("re-keying " + path, error);
  };
  if (auto verified = VerifyEncryptionPolicy(dir.get(), *old_key, path); !verified)
    return fail(verified.error());
  if (auto removed = RemoveLeftover(rekey_path); !removed) return fail(removed.error());
  if (::mkdirat(parent->get(), rekey_name.c_str(), 0700) != 0)
    return fail(ErrnoError("cannot create " + rekey_path));
  auto copy = OpenDirectoryAt(parent->get(), rekey_name, rekey_path);
  if (!copy) return fail(copy.error());
  if (auto set = SetEncryptionPolicy(copy->get(), *new_key); !set) return fail(set.error());
  if (auto copied = CopyTree(dir.get(), copy->get()); !copied) return fail(copied.error());

  // The swap is the commit point: before it the old directory is intact
  // under its name, after it the new one is.
  if (::renameat2(parent->get(), place.name.c_str(), parent->get(), rekey_name.c_str(),
                  RENAME_EXCHANGE) != 0) {
    return fail(ErrnoError("cannot swap " + path + " with " + rekey_path));
  }
  CUSTOS_TRY(SyncDirectory(parent->get(), parent_path));
  dir.reset();
  copy->reset();
  CUSTOS_TRY(RemoveTree(rekey_path));  // the old directory now
  CUSTOS_TRY(SyncDirectory(parent->get(), parent_path));

  auto removal = RemoveEncryptionKey(volume_.root_fd(), *old_key);
  if (!removal) return Context(relative, removal.error());
  if (*removal == KeyRemoval::kFilesBusy)
    spdlog::warn("encrypted store: {}: files under the old key are still open", relative);
  unlocked_.erase(relative);
  if (was_unlocked) {
    unlocked_[relative] = *new_key;
    return {};
  }
  return LockPlace(relative, *new_key);
}

Status EncryptedStore::RotateDataKey(SecretBytes new_data_key) {
  if (new_data_key.size() != kDataKeySize) {
    return Error{std::string("data key must be ") + std::to_string(kDataKeySize) + " bytes, not " +
                 std::to_string(new_data_key.size())};
  }
  const std::string instruments = data_root() + "/" + kInstrumentsDirectory;
  std::vector<std::string> names;
  std::error_code error;
  for (fs::directory_iterator it(instruments, error), end; !error && it != end;
       it.increment(error)) {
    std::string name = it->path().filename().string();
    if (name.front() != '.' && it->is_directory(error) && !it->is_symlink(error))
      names.push_back(name);
  }
  if (error && error != std::errc::no_such_file_or_directory)
    return Error{"cannot list " + instruments + ": " + error.message()};
  for (const auto& name : names) CUSTOS_TRY(RotateKey(name, new_data_key));
  CUSTOS_TRY(RotatePlace(SpoolPlace(), new_data_key));
  data_key_ = std::move(new_data_key);
  return {};
}

Status EncryptedStore::Close() {
  Status locked = LockAll();
  Status closed = volume_.Close();
  if (!locked) return locked;
  return closed;
}

}  // namespace custos::storage
