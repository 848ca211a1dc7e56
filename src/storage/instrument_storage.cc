#include "storage/instrument_storage.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/files.h"
#include "common/unique_fd.h"

namespace custos {

std::string PersistentDirectory(const std::string& data_root, const std::string& instrument) {
  return data_root + "/instruments/" + instrument;
}

Result<std::string> PreparePersistentDirectory(const std::string& data_root,
                                               const std::string& instrument,
                                               std::uint32_t host_uid) {
  // The parent is root's and closed to everyone else, so no instrument can
  // even list which others exist.
  CUSTOS_TRY(MakeDirectories(data_root + "/instruments", 0711));
  std::string path = PersistentDirectory(data_root, instrument);
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return ErrnoError("cannot create " + path);
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.valid()) return ErrnoError("cannot open " + path);
  if (::fchown(dir.get(), host_uid, host_uid) != 0) return ErrnoError("cannot chown " + path);
  if (::fchmod(dir.get(), 0700) != 0) return ErrnoError("cannot chmod " + path);
  return path;
}

}  // namespace custos
