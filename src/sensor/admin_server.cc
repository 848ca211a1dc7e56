#include "sensor/admin_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace custos {
namespace {

constexpr size_t kMaxRequestBytes = 64 * 1024;
constexpr size_t kMaxReplyBytes = 64 * 1024 * 1024;

Result<sockaddr_un> Address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return Error{"socket path too long: " + path};
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

// Reads up to a newline; the caller set a receive timeout on the socket.
Result<std::string> ReadLine(int fd, size_t max_bytes) {
  std::string line;
  char buffer[4096];
  while (line.find('\n') == std::string::npos) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read");
    if (n == 0) break;
    line.append(buffer, static_cast<size_t>(n));
    if (line.size() > max_bytes)
      return Error{"line longer than " + std::to_string(max_bytes) + " bytes"};
  }
  auto end = line.find('\n');
  if (end != std::string::npos) line.resize(end);
  return line;
}

Status WriteAll(int fd, const std::string& data) {
  size_t written = 0;
  while (written < data.size()) {
    ssize_t n = ::send(fd, data.data() + written, data.size() - written, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write");
    written += static_cast<size_t>(n);
  }
  return {};
}

void SetTimeout(int fd, int seconds) {
  timeval timeout{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
}

}  // namespace

AdminServer::AdminServer(EventLoop& loop, std::string path, Handler handler)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)) {}

AdminServer::~AdminServer() {
  if (listener_.valid()) {
    loop_.Unwatch(listener_.get());
    ::unlink(path_.c_str());
  }
}

Status AdminServer::Listen() {
  auto address = Address(path_);
  if (!address) return address.error();
  ::unlink(path_.c_str());
  listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener_.valid()) return ErrnoError("socket");
  // Only root may talk to sensord: the mode is set before anyone can connect.
  mode_t old_mask = ::umask(0177);
  int bound = ::bind(listener_.get(), reinterpret_cast<sockaddr*>(&*address), sizeof *address);
  ::umask(old_mask);
  if (bound != 0) return ErrnoError("bind " + path_);
  if (::listen(listener_.get(), 16) != 0) return ErrnoError("listen " + path_);
  return loop_.WatchReadable(listener_.get(), [this] { Accept(); });
}

void AdminServer::Accept() {
  for (;;) {
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client.valid()) return;
    SetTimeout(client.get(), 2);
    auto line = ReadLine(client.get(), kMaxRequestBytes);
    nlohmann::json reply;
    if (!line) {
      reply = {{"ok", false}, {"error", line.error().message}};
    } else {
      auto request = nlohmann::json::parse(*line, nullptr, false);
      if (request.is_discarded() || !request.is_object()) {
        reply = {{"ok", false}, {"error", "request is not a JSON object"}};
      } else {
        reply = handler_(request);
      }
    }
    std::string text = reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (auto written = WriteAll(client.get(), text + "\n"); !written) {
      spdlog::warn("admin reply not sent: {}", written.error().message);
    }
  }
}

Result<nlohmann::json> AdminRequest(const std::string& path, const nlohmann::json& request) {
  auto address = Address(path);
  if (!address) return address.error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&*address), sizeof *address) != 0) {
    return ErrnoError("cannot reach sensord at " + path);
  }
  SetTimeout(fd.get(), 120);
  CUSTOS_TRY(WriteAll(fd.get(), request.dump() + "\n"));
  auto line = ReadLine(fd.get(), kMaxReplyBytes);
  if (!line) return line.error();
  auto reply = nlohmann::json::parse(*line, nullptr, false);
  if (reply.is_discarded()) return Error{"sensord sent an unreadable reply"};
  return reply;
}

}  // namespace custos
