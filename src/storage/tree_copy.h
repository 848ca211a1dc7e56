// Copies a directory tree durably, for re-encrypting an instrument's
// directory under a new key (fscrypt cannot change a directory's key in
// place). The tree belongs to an instrument and may hold hostile symlinks,
// so nothing is ever followed: the walk works on directory descriptors and
// copies symlinks as symlinks. Safe from any thread (no shared state).
#pragma once

#include "common/result.h"

namespace custos::storage {

// Copies everything below `source_dir_fd` into the empty directory
// `target_dir_fd`: regular files byte for byte, directories, symlinks and
// special files (fifos, sockets, devices) with their mode, owner and
// access/modification times; then fsyncs each file and directory, the
// target included. Not copied: extended attributes and ACLs, hard links
// (each name gets its own copy), holes (sparse files become dense).
// The target directory's own mode, owner and times are set from the source.
Status CopyTree(int source_dir_fd, int target_dir_fd);

}  // namespace custos::storage
