#include "custos/http_ui.h"

#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <thread>

namespace custos {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Local = asio::local::stream_protocol;
using Stream = beast::basic_stream<Local>;

constexpr auto kIdleTimeout = std::chrono::seconds(30);
constexpr std::size_t kMaxBody = 1 << 20;

// One connection: read a request, answer it, repeat while kept alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Local::socket socket, const HttpUi::Handler& handler)
      : stream_(std::move(socket)), handler_(handler) {}

  void Read() {
    parser_.emplace();
    parser_->body_limit(kMaxBody);
    stream_.expires_after(kIdleTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code error, std::size_t) { self->OnRead(error); });
  }

 private:
  void OnRead(beast::error_code error) {
    if (error) return;  // closed, timed out or malformed: drop the connection
    auto request = parser_->release();
    HttpRequest mine{
        std::string(request.method_string()), std::string(request.target()), {}, request.body()};
    for (const auto& field : request)
      mine.headers[std::string(field.name_string())] = std::string(field.value());
    HttpResponse answer;
    try {
      answer = handler_(mine);
    } catch (const std::exception& e) {
      answer = {500, "text/plain; charset=utf-8", std::string("handler failed: ") + e.what()};
    }
    response_ = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(answer.status), request.version());
    response_->set(http::field::content_type, answer.content_type);
    response_->keep_alive(request.keep_alive());
    response_->body() = std::move(answer.body);
    response_->prepare_payload();
    http::async_write(stream_, *response_,
                      [self = shared_from_this()](beast::error_code write_error, std::size_t) {
                        if (!write_error && self->response_->keep_alive()) self->Read();
                      });
  }

  Stream stream_;
  const HttpUi::Handler& handler_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<http::response<http::string_body>> response_;
};

}  // namespace

struct HttpUi::Server {
  asio::io_context io;
  Local::acceptor acceptor{io};
  Handler handler;
  std::string path;
  std::thread thread;

  void Accept() {
    acceptor.async_accept([this](beast::error_code error, Local::socket socket) {
      if (error) return;
      std::make_shared<Session>(std::move(socket), handler)->Read();
      Accept();
    });
  }
};

std::string HttpUi::DefaultSocket() {
  const char* path = std::getenv("CUSTOS_UI_SOCKET");
  return path != nullptr ? path : "/run/custos/ui/ui.sock";
}

HttpUi::HttpUi(std::unique_ptr<Server> server) : server_(std::move(server)) {}

Result<std::unique_ptr<HttpUi>> HttpUi::Start(Handler handler, const std::string& socket) {
  auto server = std::make_unique<Server>();
  server->handler = std::move(handler);
  server->path = socket;
  ::unlink(socket.c_str());
  beast::error_code error;
  server->acceptor.open(Local(), error);
  if (!error) server->acceptor.bind(Local::endpoint(socket), error);
  if (!error) server->acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) return Error{"cannot serve the UI on " + socket + ": " + error.message()};
  server->Accept();
  Server* raw = server.get();
  server->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<HttpUi>(new HttpUi(std::move(server)));
}

HttpUi::~HttpUi() {
  server_->io.stop();
  if (server_->thread.joinable()) server_->thread.join();
  ::unlink(server_->path.c_str());
}

}  // namespace custos
