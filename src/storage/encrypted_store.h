// The sensor's encrypted data root: an EncryptedVolume mounted at the data
// root, with one fscrypt v2 directory per instrument (instruments/<name>)
// and one for the uplink spool (spool), each under its own key derived from
// the sensor's data key (see key_material.h). The data key stays in locked
// memory for the store's life; derived keys live only as long as a call.
//
// sensord opens the store once it has the data key, calls Unlock(name)
// before an instrument starts (then PreparePersistentDirectory on the path
// for ownership), and LockAll() or Close() at shutdown: from then on the
// directories' contents and file names are unreadable, even to root, until
// unlocked again with the same data key.
//
// Not thread-safe: call from one thread (sensord's supervisor). Needs root.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/result.h"
#include "storage/encrypted_volume.h"
#include "storage/fscrypt.h"
#include "storage/key_material.h"

namespace custos::storage {

struct StoreOptions {
  std::string source;      // image file or block device holding the ext4
  std::string mountpoint;  // the sensor's data root
  // When non-zero and `source` does not exist, an image of this size is
  // created (sparse) and formatted first.
  std::uint64_t create_image_bytes = 0;
};

class EncryptedStore {
 public:
  // Mounts the volume (cleaning up a crashed run's mount first) and keeps
  // `data_key` (kDataKeySize bytes). Nothing is unlocked yet.
  static Result<std::unique_ptr<EncryptedStore>> Open(const StoreOptions& options,
                                                      SecretBytes data_key);
  EncryptedStore(const EncryptedStore&) = delete;
  EncryptedStore& operator=(const EncryptedStore&) = delete;
  // LockAll and unmount; failures are logged.
  ~EncryptedStore();

  const std::string& data_root() const { return volume_.mountpoint(); }

  // Adds the instrument's key and returns its directory, created with the
  // policy on first use. An existing directory must carry our policy with
  // this key: one that is unencrypted but not empty, or encrypted under
  // another key (another data key, an unfinished RotateDataKey), is refused.
  // Leftovers of an interrupted RotateKey are removed. Names are single
  // path components not starting with '.'.
  Result<std::string> Unlock(const std::string& instrument);
  // The same for the uplink's spool directory.
  Result<std::string> UnlockSpool();

  // Removes the instrument's key. Fails when files are still open (their
  // contents stay readable until closed); calling again after they are
  // closed finishes the job.
  Status Lock(const std::string& instrument);
  // Removes every key this store added (instruments and spool); tries all
  // and reports the first failure.
  Status LockAll();

  // Whether the instrument's key is present in the filesystem.
  Result<KeyStatus> InstrumentKeyStatus(const std::string& instrument);

  // Re-encrypts the instrument's directory under a key derived from
  // `new_data_key`: copies it into a new directory with the new policy
  // (modes, owners, times kept; every file fsynced), swaps the two
  // atomically (renameat2 RENAME_EXCHANGE) and deletes the old one. The
  // instrument must be stopped. A directory already under the new key is
  // left alone, so an interrupted rotation can simply be run again; the
  // directory stays unlocked afterwards only if it was unlocked before.
  // The store's own data key is not changed: see RotateDataKey.
  Status RotateKey(const std::string& instrument, const SecretBytes& new_data_key);
  // RotateKey for every instrument directory and the spool, then adopts
  // `new_data_key`. If it fails half way, the store keeps the old key and
  // running it again (with both keys) finishes the rest.
  Status RotateDataKey(SecretBytes new_data_key);

  // LockAll, then unmount and detach.
  Status Close();

 private:
  // One encrypted directory: where it is (relative to the data root) and
  // the HKDF info its key is derived with.
  struct Place {
    std::string parent;  // "instruments" or "" (the root)
    std::string name;
    std::string info;
    std::string Relative() const { return parent.empty() ? name : parent + "/" + name; }
  };

  EncryptedStore(EncryptedVolume volume, SecretBytes data_key)
      : volume_(std::move(volume)), data_key_(std::move(data_key)) {}

  static Result<Place> InstrumentPlace(const std::string& instrument);
  static Place SpoolPlace();
  std::string PathOf(const Place& place) const;
  Result<std::string> UnlockPlace(const Place& place);
  Status LockPlace(const std::string& relative, const KeyIdentifier& key);
  Status RotatePlace(const Place& place, const SecretBytes& new_data_key);
  Result<KeyIdentifier> AddKey(const SecretBytes& data_key, const Place& place);

  EncryptedVolume volume_;
  SecretBytes data_key_;
  // Keys this store has added, by directory relative to the data root.
  std::map<std::string, KeyIdentifier> unlocked_;
};

}  // namespace custos::storage
