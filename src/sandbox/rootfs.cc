#include "sandbox/rootfs.h"

#include <sys/stat.h>

#include <filesystem>
#include <sstream>

#include "common/process.h"

namespace custos {

std::vector<std::string> ParseLddOutput(const std::string& output) {
  std::vector<std::string> paths;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
    // "/lib64/ld-linux-x86-64.so.2 (0x...)"; vdso lines carry no path.
    std::string path;
    auto arrow = line.find("=> ");
    if (arrow != std::string::npos) {
      path = line.substr(arrow + 3);
    } else {
      auto start = line.find_first_not_of(" \t");
      if (start == std::string::npos) continue;
      path = line.substr(start);
    }
    auto space = path.find(" (");
    if (space != std::string::npos) path.resize(space);
    if (!path.empty() && path.front() == '/') paths.push_back(path);
  }
  return paths;
}

std::string ExecutableInRootfs(const std::string& host_path) {
  return "/instrument/" + std::filesystem::path(host_path).filename().string();
}

bool IsReservedPath(const std::string& path) {
  for (const char* mount :
       {"/proc", "/dev", "/sys", "/tmp", "/data", "/run/custos", "/etc/custos"}) {
    std::string prefix = mount;
    if (path == prefix || path.rfind(prefix + "/", 0) == 0) return true;
  }
  return false;
}

Status AssembleRootfs(const std::vector<RootfsFile>& files, const std::string& rootfs) {
  namespace fs = std::filesystem;
  for (const auto& file : files) {
    if (IsReservedPath(file.destination)) {
      return Error{"cannot place " + file.source + " at " + file.destination +
                   ": that path belongs to the platform's mounts"};
    }
    fs::path target = fs::path(rootfs) / fs::path(file.destination).relative_path();
    std::error_code error;
    fs::create_directories(target.parent_path(), error);
    if (error)
      return Error{"cannot create " + target.parent_path().string() + ": " + error.message()};
    struct stat source {
    }, copy{};
    if (::stat(file.source.c_str(), &source) != 0) return ErrnoError("cannot use " + file.source);
    if (::stat(target.c_str(), &copy) == 0 && copy.st_size == source.st_size &&
        copy.st_mtim.tv_sec >= source.st_mtim.tv_sec) {
      continue;
    }
    fs::copy_file(file.source, target, fs::copy_options::overwrite_existing, error);
    if (error)
      return Error{"cannot copy " + file.source + " into " + rootfs + ": " + error.message()};
    ::chmod(target.c_str(), source.st_mode & 0755);
  }
  return {};
}

Result<std::vector<std::string>> RootfsResolver::FilesFor(const std::string& executable) {
  struct stat info {};
  if (::stat(executable.c_str(), &info) != 0) return ErrnoError("cannot use " + executable);
  if (!S_ISREG(info.st_mode) || (info.st_mode & 0111) == 0) {
    return Error{executable + " is not an executable file"};
  }
  long long mtime =
      static_cast<long long>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
  auto cached = cache_.find(executable);
  if (cached != cache_.end() && cached->second.mtime_ns == mtime) return cached->second.files;

  auto result = RunCommand({"ldd", executable});
  if (!result) return result.error();
  std::vector<std::string> files{executable};
  // A static binary makes ldd exit 1 with "not a dynamic executable".
  if (result->exit_code == 0) {
    if (result->output.find("not found") != std::string::npos) {
      return Error{executable + " needs a library that is not installed: " + result->output};
    }
    for (auto& path : ParseLddOutput(result->output)) files.push_back(path);
  }
  cache_[executable] = Entry{mtime, files};
  return files;
}

}  // namespace custos
