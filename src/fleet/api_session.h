// One HTTPS connection to the API port (Boost.Beast): TLS handshake, then
// requests read with header (16 KiB) and body (1 MiB) limits and timeouts,
// each handed to ApiRoutes on the blocking pool (the store may fsync) and
// answered on the connection's strand; keep-alive is honoured. A request
// over a limit gets its 413/431 problem and the connection closes.
// Thread-safety: the session runs on the strand its socket was accepted on.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "fleet/api_routes.h"

namespace custos::fleet {

inline constexpr std::size_t kMaxApiBody = 1024 * 1024;
inline constexpr std::size_t kMaxApiHeader = 16 * 1024;

// `context`, `routes` and `blocking` must outlive the session.
void StartApiSession(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& context,
                     ApiRoutes& routes, boost::asio::thread_pool& blocking);

}  // namespace custos::fleet
