// One sensor's connection to the channel port (docs/fleet-protocol.md, "The
// channel"): mutual TLS, then a WebSocket upgrade at /v1/channel. The sensor
// is who its verified certificate says (PeerIdentityOf), and is admitted only
// if the registry knows it, it is not revoked and the certificate is the one
// issued to it. Then: hello -> welcome (and the desired state if newer),
// heartbeats recorded, event batches stored one at a time in arrival order,
// each acknowledged only after its commit, state and command results noted.
// Any protocol violation gets an "error" message and the connection closes.
// Thread-safety: everything runs on the strand the socket was accepted on;
// the ChannelLink calls post to it. Store calls run on the blocking pool.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "fleet/fleet_core.h"

namespace custos::fleet {

// `context` (from crypto::MakeServerContext), `core` and `blocking` must
// outlive the session.
void StartChannelSession(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& context,
                         FleetCore& core, boost::asio::thread_pool& blocking);

}  // namespace custos::fleet
