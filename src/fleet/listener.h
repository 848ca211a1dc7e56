// A TCP listening socket that hands each accepted connection, already bound
// to its own strand, to a callback. A failed accept (out of descriptors, for
// one) pauses briefly instead of spinning. Thread-safety: Start and Stop post
// to the listener's strand; the callback runs there.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "fleet/host_port.h"

namespace custos::fleet {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  using OnAccept = std::function<void(boost::asio::ip::tcp::socket)>;

  // Binds and listens (port 0 lets the kernel choose); `name` is for logs.
  static Result<std::shared_ptr<Listener>> Open(boost::asio::io_context& io,
                                                const HostPort& address, std::string name,
                                                OnAccept on_accept);

  void Start();
  void Stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const { return endpoint_; }

  Listener(boost::asio::io_context& io, std::string name, OnAccept on_accept);

 private:
  void Accept();

  boost::asio::io_context& io_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer pause_;
  boost::asio::ip::tcp::endpoint endpoint_;
  std::string name_;
  OnAccept on_accept_;
};

}  // namespace custos::fleet
