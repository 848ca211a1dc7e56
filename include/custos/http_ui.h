// Instrument SDK: serves an instrument's HTTP UI or API on the unix socket
// the platform gives it (CUSTOS_UI_SOCKET, /run/custos/ui/ui.sock). The
// fleet's reverse proxy (a later issue) reaches instrument UIs only this way;
// an instrument never listens on a network. HTTP/1.1 via Boost.Beast.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "custos/result.h"

namespace custos {

struct HttpRequest {
  std::string method;
  std::string target;  // path and query, e.g. /stats?top=10
  std::map<std::string, std::string> headers;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpUi {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  static std::string DefaultSocket();
  // Listens on `socket` (replacing a stale one) and serves on a thread of its
  // own until destroyed. The handler runs on that thread, one request at a time.
  static Result<std::unique_ptr<HttpUi>> Start(Handler handler,
                                               const std::string& socket = DefaultSocket());
  ~HttpUi();

 private:
  struct Server;
  explicit HttpUi(std::unique_ptr<Server> server);
  std::unique_ptr<Server> server_;
};

}  // namespace custos
