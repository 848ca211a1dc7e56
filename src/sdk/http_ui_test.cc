#include "custos/http_ui.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

namespace custos {
namespace {

std::string Exchange(const std::string& path, const std::string& request) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return "connect failed";
  (void)!::write(fd, request.data(), request.size());
  ::shutdown(fd, SHUT_WR);
  std::string reply;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0) reply.append(buffer, static_cast<size_t>(n));
  ::close(fd);
  return reply;
}

TEST(HttpUi, AnswersRequestsOnItsUnixSocket) {
  char pattern[] = "/tmp/custos-ui-XXXXXX";
  std::string dir = ::mkdtemp(pattern);
  std::string socket = dir + "/ui.sock";
  auto ui = HttpUi::Start(
      [](const HttpRequest& request) {
        if (request.target == "/stats")
          return HttpResponse{200, "application/json", R"({"frames":3})"};
        return HttpResponse{404, "text/plain", "no such page: " + request.target};
      },
      socket);
  ASSERT_TRUE(ui.ok()) << ui.error().message;
  std::string stats =
      Exchange(socket, "GET /stats HTTP/1.1\r\nHost: sensor\r\nConnection: close\r\n\r\n");
  EXPECT_NE(stats.find("HTTP/1.1 200 OK"), std::string::npos) << stats;
  EXPECT_NE(stats.find("Content-Type: application/json"), std::string::npos);
  EXPECT_NE(stats.find(R"({"frames":3})"), std::string::npos);
  std::string missing =
      Exchange(socket, "GET /nope HTTP/1.1\r\nHost: sensor\r\nConnection: close\r\n\r\n");
  EXPECT_NE(missing.find("404"), std::string::npos);
  // Garbage is dropped without harming the server.
  Exchange(socket, "\x01\x02 not http\r\n\r\n");
  EXPECT_NE(
      Exchange(socket, "GET /stats HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n").find("200"),
      std::string::npos);
  ui->reset();
  EXPECT_FALSE(std::filesystem::exists(socket));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace custos
