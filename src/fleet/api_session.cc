#include "fleet/api_session.h"

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <memory>
#include <optional>

#include "common/log.h"

namespace custos::fleet {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kIdleTimeout = std::chrono::seconds(30);
constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr auto kWriteTimeout = std::chrono::seconds(30);

class ApiSession : public std::enable_shared_from_this<ApiSession> {
 public:
  ApiSession(tcp::socket socket, asio::ssl::context& context, ApiRoutes& routes,
             asio::thread_pool& blocking)
      : stream_(std::move(socket), context), routes_(routes), blocking_(blocking) {
    beast::error_code ignored;
    auto local = beast::get_lowest_layer(stream_).socket().local_endpoint(ignored);
    local_address_ = local.address().to_string();
    auto remote = beast::get_lowest_layer(stream_).socket().remote_endpoint(ignored);
    remote_ = remote.address().to_string() + ":" + std::to_string(remote.port());
  }

  void Start() {
    beast::get_lowest_layer(stream_).expires_after(kHandshakeTimeout);
    stream_.async_handshake(
        asio::ssl::stream_base::server, [self = shared_from_this()](beast::error_code error) {
          if (error) {
            spdlog::debug("API {}: TLS handshake failed: {}", self->remote_, error.message());
            return;
          }
          self->ReadHeader();
        });
  }

 private:
  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(kMaxApiHeader);
    parser_->body_limit(kMaxApiBody);
    beast::get_lowest_layer(stream_).expires_after(kIdleTimeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code error, std::size_t) {
                              self->OnHeader(error);
                            });
  }

  void OnHeader(beast::error_code error) {
    if (error) return OnReadError(error);
    auto& request = parser_->get();
    auto length = parser_->content_length();
    if (length && *length > kMaxApiBody) {
      return Refuse(Problem{413, "body-too-large", "the request body is larger than 1 MiB"});
    }
    beast::get_lowest_layer(stream_).expires_after(kRequestTimeout);
    if (beast::iequals(request[http::field::expect], "100-continue")) {
      auto proceed = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                        request.version());
      http::async_write(
          stream_, *proceed,
          [self = shared_from_this(), proceed](beast::error_code write_error, std::size_t) {
            if (write_error) return;
            self->ReadBody();
          });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code error, std::size_t) {
                       if (error) return self->OnReadError(error);
                       self->Dispatch();
                     });
  }

  void OnReadError(beast::error_code error) {
    if (error == http::error::body_limit) {
      return Refuse(Problem{413, "body-too-large", "the request body is larger than 1 MiB"});
    }
    if (error == http::error::header_limit) {
      return Refuse(Problem{431, "header-too-large", "the request header is larger than 16 KiB"});
    }
    if (error == http::error::end_of_stream || error == beast::error::timeout ||
        error == asio::ssl::error::stream_truncated || error == asio::error::operation_aborted ||
        error == asio::error::connection_reset || error == asio::error::eof) {
      return;  // the client went away or idled out
    }
    if (error.category() == http::make_error_code(http::error::bad_target).category()) {
      return Refuse(BadRequest("malformed-http", "malformed HTTP request: " + error.message()));
    }
    spdlog::debug("API {}: read failed: {}", remote_, error.message());
  }

  void Dispatch() {
    auto& message = parser_->get();
    auto request = std::make_shared<ApiRequest>();
    request->method = std::string(message.method_string());
    request->target = std::string(message.target());
    request->authorization = std::string(message[http::field::authorization]);
    request->content_type = std::string(message[http::field::content_type]);
    request->host = std::string(message[http::field::host]);
    request->local_address = local_address_;
    request->body = std::move(message.body());
    keep_alive_ = message.keep_alive();
    version_ = message.version();
    // The routes may wait on the store's fsync: not on a network thread.
    asio::post(blocking_, [self = shared_from_this(), request] {
      auto reply = std::make_shared<ApiReply>(self->routes_.Handle(*request));
      spdlog::debug("API {} {} {} -> {}", self->remote_, request->method,
                    request->target.substr(0, 200), reply->status);
      asio::post(self->stream_.get_executor(), [self, reply] { self->Write(*reply); });
    });
  }

  void Refuse(const Problem& problem) {
    keep_alive_ = false;
    refused_ = true;
    version_ = parser_ && parser_->is_header_done() ? parser_->get().version() : 11;
    Write(ProblemReply(problem));
  }

  void Write(const ApiReply& reply) {
    auto response = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), version_);
    response->set(http::field::content_type, reply.content_type);
    response->set(http::field::cache_control, "no-store");
    for (const auto& header : reply.headers) response->set(header.first, header.second);
    response->body() = reply.body;
    response->keep_alive(keep_alive_);
    response->prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(kWriteTimeout);
    http::async_write(stream_, *response,
                      [self = shared_from_this(), response](beast::error_code error, std::size_t) {
                        if (error) return;
                        if (response->keep_alive()) return self->ReadHeader();
                        if (self->refused_) return self->Drain();
                        self->Shutdown();
                      });
  }

  // A client refused mid-request is usually still sending its body, and
  // closing now would make its write fail before it reads the answer; so
  // the rest is read and dropped, within limits, before closing.
  void Drain() {
    constexpr std::size_t kMaxDrained = 8 * 1024 * 1024;
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(64 * 1024),
                            [self = shared_from_this()](beast::error_code error, std::size_t n) {
                              self->drained_ += n;
                              if (error || self->drained_ > kMaxDrained) {
                                beast::error_code ignored;
                                beast::get_lowest_layer(self->stream_).socket().close(ignored);
                                return;
                              }
                              self->Drain();
                            });
  }

  void Shutdown() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {
      beast::error_code ignored;
      beast::get_lowest_layer(self->stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  beast::ssl_stream<beast::tcp_stream> stream_;
  ApiRoutes& routes_;
  asio::thread_pool& blocking_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string local_address_;
  std::string remote_;
  bool keep_alive_ = false;
  bool refused_ = false;
  std::size_t drained_ = 0;
  unsigned version_ = 11;
};

}  // namespace

void StartApiSession(tcp::socket socket, asio::ssl::context& context, ApiRoutes& routes,
                     asio::thread_pool& blocking) {
  std::make_shared<ApiSession>(std::move(socket), context, routes, blocking)->Start();
}

}  // namespace custos::fleet
