#include "fleet/https_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>

#include "crypto/tls.h"
#include "fleet/api_tls.h"

namespace custos::fleet {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Event listings can be long; anything larger is a broken server.
constexpr std::size_t kMaxReplyBytes = 256 * 1024 * 1024;

struct Exchange {
  Exchange(asio::io_context& io, asio::ssl::context& context) : resolver(io), stream(io, context) {}

  tcp::resolver resolver;
  beast::ssl_stream<beast::tcp_stream> stream;
  http::request<http::string_body> request;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  std::optional<Error> error;
  bool done = false;

  void Fail(const char* step, const beast::error_code& code) {
    error = Error{std::string(step) + ": " + code.message()};
  }
};

}  // namespace

Result<HttpsReply> HttpsCall(const HttpsClientOptions& options, std::string_view method,
                             std::string_view target, std::string_view body,
                             std::string_view content_type) {
  std::string where = "fleet API ";
  where += FormatHostPort(options.server.host, options.server.port);
  auto context = MakeApiClientContext(options.root_pem, options.server.host);
  if (!context.ok()) return Context(where, context.error());
  asio::io_context io;
  Exchange exchange(io, *context);
  if (auto named = crypto::SetServerName(exchange.stream.native_handle(), options.server.host);
      !named.ok()) {
    return Context(where, named.error());
  }
  auto& request = exchange.request;
  request.method(http::string_to_verb(beast::string_view(method.data(), method.size())));
  if (request.method() == http::verb::unknown) return Error{"unknown HTTP method"};
  request.target(beast::string_view(target.data(), target.size()));
  request.version(11);
  request.set(http::field::host, FormatHostPort(options.server.host, options.server.port));
  request.set(http::field::user_agent, "custos");
  request.set(http::field::accept, "application/json, application/problem+json");
  if (!options.bearer_token.empty()) {
    request.set(http::field::authorization, "Bearer " + options.bearer_token);
  }
  if (!body.empty() || method == "POST" || method == "PUT") {
    request.set(http::field::content_type,
                beast::string_view(content_type.data(), content_type.size()));
    request.body() = std::string(body);
  }
  request.keep_alive(false);
  request.prepare_payload();
  exchange.parser.body_limit(kMaxReplyBytes);

  Exchange* x = &exchange;
  auto& lowest = beast::get_lowest_layer(exchange.stream);
  lowest.expires_after(options.timeout);
  exchange.resolver.async_resolve(
      options.server.host, std::to_string(options.server.port),
      [x](beast::error_code code, const tcp::resolver::results_type& results) {
        if (code) return x->Fail("resolve", code);
        beast::get_lowest_layer(x->stream).async_connect(
            results, [x](beast::error_code connect_code, const tcp::endpoint&) {
              if (connect_code) return x->Fail("connect", connect_code);
              x->stream.async_handshake(
                  asio::ssl::stream_base::client, [x](beast::error_code handshake_code) {
                    if (handshake_code) return x->Fail("TLS handshake", handshake_code);
                    http::async_write(
                        x->stream, x->request, [x](beast::error_code write_code, std::size_t) {
                          if (write_code) return x->Fail("send request", write_code);
                          http::async_read(x->stream, x->buffer, x->parser,
                                           [x](beast::error_code read_code, std::size_t) {
                                             if (read_code) return x->Fail("read reply", read_code);
                                             x->done = true;
                                             // The reply is complete; close_notify
                                             // is a courtesy not worth waiting for.
                                             beast::error_code ignored;
                                             beast::get_lowest_layer(x->stream).socket().shutdown(
                                                 tcp::socket::shutdown_both, ignored);
                                           });
                        });
                  });
            });
      });
  io.run();
  if (exchange.error) return Context(where, *exchange.error);
  if (!exchange.done) return Context(where, Error{"no reply"});
  auto& reply = exchange.parser.get();
  HttpsReply result;
  result.status = static_cast<int>(reply.result_int());
  result.content_type = std::string(reply[http::field::content_type]);
  result.body = std::move(reply.body());
  return result;
}

}  // namespace custos::fleet
