#include "fleet/fleet_server.h"

#include <boost/asio/post.hpp>

#include "common/files.h"
#include "common/log.h"
#include "crypto/key_file.h"
#include "crypto/tls.h"
#include "fleet/api_session.h"
#include "fleet/api_tls.h"
#include "fleet/channel_session.h"
#include "fleet/fleet_layout.h"

namespace custos::fleet {

namespace asio = boost::asio;

Result<std::unique_ptr<FleetServer>> FleetServer::Open(const FleetServerOptions& options) {
  if (options.network_threads < 1 || options.blocking_threads < 1) {
    return Error{"fleetd needs at least one network and one blocking thread"};
  }
  std::unique_ptr<FleetServer> server(new FleetServer(options));
  if (auto loaded = server->Load(); !loaded.ok()) {
    return Context("load fleet " + options.dir.string(), loaded.error());
  }
  return server;
}

FleetServer::~FleetServer() { Stop(); }

Status FleetServer::Load() {
  FleetPaths paths(options_.dir);
  auto admin_hash = ReadAdminTokenHash(paths);
  if (!admin_hash.ok()) return admin_hash.error();
  auto store = OpenSqliteFleetStore(paths.database);
  if (!store.ok()) return store.error();
  store_ = std::move(*store);
  auto authority = crypto::IssuingAuthority::Load(paths.dir);
  if (!authority.ok()) return authority.error();
  authority_.emplace(std::move(*authority));

  // The CRL on disk may be stale or behind the store (a crash mid-revoke):
  // the running one is always signed afresh from the store.
  auto now = std::chrono::system_clock::now();
  auto crl = SignStoreCrl(*store_, *authority_, crypto::CrlTimes{now, now + options_.crl_validity});
  if (!crl.ok()) return Context("sign CRL", crl.error());
  auto revocations =
      crypto::RevocationList::Create(crypto::CertificateToPem(authority_->certificate()), *crl);
  if (!revocations.ok()) return revocations.error();
  revocations_ = std::move(*revocations);

  auto server_key = crypto::ReadPrivateKeyFile(paths.server_key);
  if (!server_key.ok()) return server_key.error();
  auto certificate = ReadFile(paths.server_certificate);
  if (!certificate.ok()) return certificate.error();
  auto chain = ReadFile(paths.chain);
  if (!chain.ok()) return chain.error();
  auto api_tls = MakeApiServerContext(*certificate, *chain, *server_key);
  if (!api_tls.ok()) return api_tls.error();
  api_tls_.emplace(std::move(*api_tls));
  crypto::ServerTlsOptions channel_options{authority_->root_pem(), *certificate, *chain,
                                           revocations_};
  auto channel_tls = crypto::MakeServerContext(channel_options, *server_key);
  if (!channel_tls.ok()) return channel_tls.error();
  channel_tls_.emplace(std::move(*channel_tls));

  auto master = ReadMasterKeyFile(paths.master_key);
  if (!master.ok()) return master.error();
  keys_.emplace(*store_, *master);
  auto enroller = Enroller::Create(*store_, *authority_, *keys_, options_.certificate_validity);
  if (!enroller.ok()) return enroller.error();
  enroller_.emplace(std::move(*enroller));
  crl_.emplace(*store_, *authority_, revocations_, paths.crl, options_.crl_validity);
  event_writer_.emplace(*store_);

  core_.store = store_.get();
  core_.authority = &*authority_;
  core_.revocations = revocations_;
  core_.keys = &*keys_;
  core_.enroller = &*enroller_;
  core_.crl = &*crl_;
  core_.registry = &registry_;
  core_.events = &*event_writer_;
  core_.admin_token_hash = std::move(*admin_hash);
  core_.channel_advertise = options_.channel_advertise;
  core_.heartbeat_seconds = options_.heartbeat_seconds;
  routes_.emplace(core_);
  return {};
}

Status FleetServer::Start() {
  if (started_) return Error{"fleetd is already started"};
  auto api_address = ParseHostPort(options_.api_address, true);
  if (!api_address.ok()) return Context("--api", api_address.error());
  auto channel_address = ParseHostPort(options_.channel_address, true);
  if (!channel_address.ok()) return Context("--channel", channel_address.error());
  if (!options_.channel_advertise.empty()) {
    auto advertised = ParseHostPort(options_.channel_advertise);
    if (!advertised.ok()) return Context("--advertise-channel", advertised.error());
  }
  CUSTOS_TRY(crl_->Publish());

  blocking_.emplace(static_cast<std::size_t>(options_.blocking_threads));
  auto api = Listener::Open(io_, *api_address, "API", [this](asio::ip::tcp::socket socket) {
    StartApiSession(std::move(socket), *api_tls_, *routes_, *blocking_);
  });
  if (!api.ok()) return api.error();
  auto channel =
      Listener::Open(io_, *channel_address, "channel", [this](asio::ip::tcp::socket socket) {
        StartChannelSession(std::move(socket), *channel_tls_, core_, *blocking_);
      });
  if (!channel.ok()) return channel.error();
  api_ = std::move(*api);
  channel_ = std::move(*channel);
  core_.channel_port = channel_->local_endpoint().port();
  api_->Start();
  channel_->Start();
  crl_timer_.emplace(io_);
  ScheduleCrlCheck();
  started_ = true;
  for (int i = 0; i < options_.network_threads; ++i) {
    threads_.emplace_back([this] { io_.run(); });
  }
  spdlog::info("fleetd serving {}: API on {}, channel on {}", options_.dir.string(),
               FormatHostPort(api_address->host, api_port()),
               FormatHostPort(channel_address->host, channel_port()));
  return {};
}

void FleetServer::ScheduleCrlCheck() {
  crl_timer_->expires_after(options_.crl_check_interval);
  crl_timer_->async_wait([this](boost::system::error_code error) {
    if (error) return;
    asio::post(*blocking_, [this] {
      if (auto refreshed = crl_->RefreshIfDue(); !refreshed.ok()) {
        spdlog::error("{}", refreshed.error().message);
      }
    });
    ScheduleCrlCheck();
  });
}

void FleetServer::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  spdlog::info("fleetd stopping");
  api_->Stop();
  channel_->Stop();
  asio::post(io_, [this] { crl_timer_->cancel(); });
  registry_.DisconnectAll("fleetd is shutting down");
  if (!registry_.WaitUntilEmpty(std::chrono::seconds(2))) {
    spdlog::warn("{} channel(s) did not close in time", registry_.size());
  }
  // No new store work is queued once the network threads are gone; what is
  // queued finishes (a batch in flight commits but is not acknowledged, and
  // the sensor sends it again).
  io_.stop();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
  blocking_->join();
  event_writer_->Stop();
  spdlog::info("fleetd stopped");
}

}  // namespace custos::fleet
