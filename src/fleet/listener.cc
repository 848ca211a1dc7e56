#include "fleet/listener.h"

#include <boost/asio/post.hpp>

#include "common/log.h"

namespace custos::fleet {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Listener::Listener(asio::io_context& io, std::string name, OnAccept on_accept)
    : io_(io),
      strand_(asio::make_strand(io)),
      acceptor_(strand_),
      pause_(strand_),
      name_(std::move(name)),
      on_accept_(std::move(on_accept)) {}

Result<std::shared_ptr<Listener>> Listener::Open(asio::io_context& io, const HostPort& address,
                                                 std::string name, OnAccept on_accept) {
  std::string where = "listen on " + FormatHostPort(address.host, address.port) + " (" + name + ")";
  boost::system::error_code error;
  auto ip = asio::ip::make_address(address.host, error);
  if (error) return Error{where + ": the host must be an IP address"};
  auto listener = std::make_shared<Listener>(io, std::move(name), std::move(on_accept));
  tcp::endpoint endpoint(ip, address.port);
  auto& acceptor = listener->acceptor_;
  if (acceptor.open(endpoint.protocol(), error); error)
    return Error{where + ": " + error.message()};
  if (acceptor.set_option(tcp::acceptor::reuse_address(true), error); error) {
    return Error{where + ": " + error.message()};
  }
  if (acceptor.bind(endpoint, error); error) return Error{where + ": " + error.message()};
  if (acceptor.listen(asio::socket_base::max_listen_connections, error); error) {
    return Error{where + ": " + error.message()};
  }
  listener->endpoint_ = acceptor.local_endpoint(error);
  if (error) return Error{where + ": " + error.message()};
  return listener;
}

void Listener::Start() {
  asio::post(strand_, [self = shared_from_this()] { self->Accept(); });
}

void Listener::Stop() {
  asio::post(strand_, [self = shared_from_this()] {
    boost::system::error_code ignored;
    self->acceptor_.close(ignored);
    self->pause_.cancel();
  });
}

void Listener::Accept() {
  // Each connection gets its own strand: its handlers never run at once.
  acceptor_.async_accept(
      asio::make_strand(io_),
      [self = shared_from_this()](boost::system::error_code error, tcp::socket socket) {
        if (error == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
        if (error) {
          spdlog::warn("{}: accept failed: {}", self->name_, error.message());
          self->pause_.expires_after(std::chrono::milliseconds(100));
          self->pause_.async_wait([self](boost::system::error_code waited) {
            if (!waited) self->Accept();
          });
          return;
        }
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        self->on_accept_(std::move(socket));
        self->Accept();
      });
}

}  // namespace custos::fleet
