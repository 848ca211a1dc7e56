#include "crypto/tls.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/asio.hpp>
#include <optional>

#include "common/files.h"
#include "crypto/authority.h"
#include "crypto/key_file.h"
#include "crypto/test_authority.h"

namespace custos::crypto {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using boost::system::error_code;
using testing::EnrollTestSensor;
using testing::InitTestAuthority;
using testing::Must;
using testing::TempDir;
using testing::TestSensor;

constexpr std::string_view kGreeting = "hello sensor\n";

struct Outcome {
  bool server_done = false;
  bool client_done = false;
  error_code server_handshake;
  error_code client_handshake;
  error_code client_read;
  std::string client_received;
  bool client_can_resume = false;  // the server sent a session ticket
  std::optional<Result<PeerIdentity>> peer;

  bool Connected() const {
    return !server_handshake && !client_handshake && !client_read && client_received == kGreeting;
  }
};

// One real TLS session over loopback TCP: the server greets a client it
// accepted; the client reads the greeting. A refused client learns of it in
// its handshake (TLS 1.2) or in its first read (TLS 1.3 client certificate).
Outcome Exchange(ssl::context& server_context, ssl::context& client_context,
                 const std::string& server_name = "fleet.test") {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  ssl::stream<tcp::socket> server(io, server_context);
  ssl::stream<tcp::socket> client(io, client_context);
  Must(SetServerName(client.native_handle(), server_name));
  Outcome outcome;
  std::array<char, kGreeting.size()> buffer{};

  acceptor.async_accept(server.next_layer(), [&](error_code accepted) {
    if (accepted) {
      outcome.server_handshake = accepted;
      outcome.server_done = true;
      return;
    }
    server.async_handshake(ssl::stream_base::server, [&](error_code handshake) {
      outcome.server_handshake = handshake;
      if (handshake) {
        outcome.server_done = true;
        server.next_layer().close();
        return;
      }
      outcome.peer = PeerIdentityOf(server);
      asio::async_write(server, asio::buffer(kGreeting.data(), kGreeting.size()),
                        [&](error_code, size_t) { outcome.server_done = true; });
    });
  });
  client.next_layer().async_connect(acceptor.local_endpoint(), [&](error_code connected) {
    if (connected) {
      outcome.client_handshake = connected;
      outcome.client_done = true;
      return;
    }
    client.async_handshake(ssl::stream_base::client, [&](error_code handshake) {
      outcome.client_handshake = handshake;
      if (handshake) {
        outcome.client_done = true;
        client.next_layer().close();
        return;
      }
      asio::async_read(client, asio::buffer(buffer), [&](error_code read, size_t length) {
        outcome.client_read = read;
        outcome.client_received.assign(buffer.data(), length);
        outcome.client_can_resume =
            SSL_SESSION_is_resumable(SSL_get0_session(client.native_handle())) == 1;
        outcome.client_done = true;
      });
    });
  });
  io.run_for(std::chrono::seconds(30));
  EXPECT_TRUE(outcome.server_done && outcome.client_done) << "exchange did not finish in time";
  return outcome;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitTestAuthority(dir_.path());
    AuthorityPaths paths(dir_.path());
    authority_.emplace(Must(IssuingAuthority::Load(dir_.path())));
    revocations_ = Must(RevocationList::Create(CertificateToPem(authority_->certificate()),
                                               Must(ReadFile(paths.crl))));
    ServerTlsOptions options{authority_->root_pem(), Must(ReadFile(paths.server_certificate)),
                             authority_->chain_pem(), revocations_};
    server_context_.emplace(
        Must(MakeServerContext(options, Must(ReadPrivateKeyFile(paths.server_key)))));
  }

  ssl::context ClientContext(const TestSensor& sensor,
                             const std::string& server_name = "fleet.test") {
    ClientTlsOptions options{authority_->root_pem(), sensor.certificate.certificate_pem,
                             sensor.certificate.chain_pem, server_name};
    return Must(MakeClientContext(options, sensor.key));
  }

  void Revoke(const std::vector<std::string>& serials) {
    std::vector<RevokedCertificate> revoked;
    auto now = std::chrono::system_clock::now();
    for (const auto& serial : serials) revoked.push_back({serial, now});
    Must(revocations_->Update(
        Must(authority_->SignCrl(revoked, CrlTimes{now, now + std::chrono::hours(1)}))));
  }

  TempDir dir_;
  std::optional<IssuingAuthority> authority_;
  std::shared_ptr<RevocationList> revocations_;
  std::optional<ssl::context> server_context_;
};

TEST_F(TlsTest, MutualTls13HandshakeNamesTheSensor) {
  auto sensor = EnrollTestSensor(*authority_, "sensor-0001", "acme");
  ssl::context client = ClientContext(sensor);
  Outcome outcome = Exchange(*server_context_, client);
  ASSERT_TRUE(outcome.Connected())
      << outcome.server_handshake.message() << " / " << outcome.client_handshake.message() << " / "
      << outcome.client_read.message();
  ASSERT_TRUE(outcome.peer.has_value());
  ASSERT_TRUE(outcome.peer->ok()) << outcome.peer->error().message;
  EXPECT_EQ((*outcome.peer)->sensor_id, "sensor-0001");
  EXPECT_EQ((*outcome.peer)->tenant, "acme");
  EXPECT_EQ((*outcome.peer)->serial_hex, sensor.certificate.serial_hex);
  // Resumption would skip the CRL check, so the server issues no tickets.
  EXPECT_FALSE(outcome.client_can_resume);
}

TEST_F(TlsTest, ClientAcceptsTheServerByIpAddress) {
  auto sensor = EnrollTestSensor(*authority_, "sensor-0001");
  ssl::context client = ClientContext(sensor, "127.0.0.1");
  EXPECT_TRUE(Exchange(*server_context_, client, "127.0.0.1").Connected());
}

TEST_F(TlsTest, RefusesAClientCertificateFromAnotherCa) {
  TempDir other_dir;
  InitTestAuthority(other_dir.path());  // same names, different keys
  IssuingAuthority other = Must(IssuingAuthority::Load(other_dir.path()));
  auto stranger = EnrollTestSensor(other, "sensor-0001");
  // The stranger trusts our root, so only the server's check can stop it.
  ssl::context client = ClientContext(stranger);
  Outcome outcome = Exchange(*server_context_, client);
  EXPECT_TRUE(outcome.server_handshake);
  EXPECT_FALSE(outcome.Connected());
  EXPECT_TRUE(outcome.client_handshake || outcome.client_read);
  EXPECT_FALSE(outcome.peer.has_value());
}

TEST_F(TlsTest, RefusesARevokedSensorAfterTheCrlUpdate) {
  auto sensor = EnrollTestSensor(*authority_, "sensor-0001");
  auto bystander = EnrollTestSensor(*authority_, "sensor-0002");
  ssl::context client = ClientContext(sensor);
  ssl::context bystander_client = ClientContext(bystander);
  ASSERT_TRUE(Exchange(*server_context_, client).Connected());

  // The same server context, with no restart, now refuses it.
  Revoke({sensor.certificate.serial_hex});
  Outcome outcome = Exchange(*server_context_, client);
  EXPECT_TRUE(outcome.server_handshake);
  EXPECT_NE(outcome.server_handshake.message().find("certificate verify failed"), std::string::npos)
      << outcome.server_handshake.message();
  EXPECT_FALSE(outcome.Connected());
  EXPECT_TRUE(revocations_->IsRevoked(sensor.certificate.serial_hex));

  EXPECT_TRUE(Exchange(*server_context_, bystander_client).Connected());
}

TEST_F(TlsTest, RefusesAClientWithoutACertificate) {
  ssl::context client(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(client.native_handle(), TLS1_3_VERSION);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(client.native_handle()), authority_->root());
  client.set_verify_mode(ssl::verify_peer);
  Outcome outcome = Exchange(*server_context_, client);
  EXPECT_TRUE(outcome.server_handshake);
  EXPECT_FALSE(outcome.Connected());
}

TEST_F(TlsTest, RefusesTls12) {
  auto sensor = EnrollTestSensor(*authority_, "sensor-0001");
  ssl::context client(ssl::context::tls_client);
  SSL_CTX* native = client.native_handle();
  ASSERT_EQ(SSL_CTX_set_max_proto_version(native, TLS1_2_VERSION), 1);
  client.add_certificate_authority(asio::buffer(authority_->root_pem()));
  client.set_verify_mode(ssl::verify_peer);
  client.use_certificate_chain(asio::buffer(sensor.certificate.certificate_pem +
                                            CertificateToPem(authority_->certificate())));
  std::string key = Must(sensor.key.PrivatePem());
  client.use_private_key(asio::buffer(key), ssl::context::pem);

  Outcome outcome = Exchange(*server_context_, client);
  EXPECT_TRUE(outcome.server_handshake);
  EXPECT_NE(outcome.server_handshake.message().find("unsupported protocol"), std::string::npos)
      << outcome.server_handshake.message();
  EXPECT_TRUE(outcome.client_handshake);
  EXPECT_FALSE(outcome.Connected());
}

TEST_F(TlsTest, ClientRefusesAServerWithTheWrongName) {
  auto sensor = EnrollTestSensor(*authority_, "sensor-0001");
  ssl::context client = ClientContext(sensor, "other.test");
  Outcome outcome = Exchange(*server_context_, client, "other.test");
  EXPECT_TRUE(outcome.client_handshake);
  EXPECT_NE(outcome.client_handshake.message().find("certificate verify failed"), std::string::npos)
      << outcome.client_handshake.message();
  EXPECT_FALSE(outcome.Connected());
}

TEST_F(TlsTest, ClientRefusesAServerFromAnotherCa) {
  TempDir other_dir;
  InitTestAuthority(other_dir.path());
  AuthorityPaths other_paths(other_dir.path());
  IssuingAuthority other = Must(IssuingAuthority::Load(other_dir.path()));
  auto other_revocations = Must(RevocationList::Create(CertificateToPem(other.certificate()),
                                                       Must(ReadFile(other_paths.crl))));
  ServerTlsOptions options{other.root_pem(), Must(ReadFile(other_paths.server_certificate)),
                           other.chain_pem(), other_revocations};
  ssl::context impostor =
      Must(MakeServerContext(options, Must(ReadPrivateKeyFile(other_paths.server_key))));
  auto sensor = EnrollTestSensor(*authority_, "sensor-0001");
  ssl::context client = ClientContext(sensor);
  Outcome outcome = Exchange(impostor, client);
  EXPECT_TRUE(outcome.client_handshake);
  EXPECT_FALSE(outcome.Connected());
}

TEST_F(TlsTest, ContextsRefuseMismatchedKeysAndMissingParts) {
  auto sensor = EnrollTestSensor(*authority_, "sensor-0001");
  KeyPair wrong = Must(KeyPair::Generate());
  ClientTlsOptions options{authority_->root_pem(), sensor.certificate.certificate_pem,
                           sensor.certificate.chain_pem, "fleet.test"};
  auto mismatched = MakeClientContext(options, wrong);
  ASSERT_FALSE(mismatched.ok());
  EXPECT_NE(mismatched.error().message.find("does not match"), std::string::npos);
  options.server_name = "";
  EXPECT_FALSE(MakeClientContext(options, sensor.key).ok());
  ServerTlsOptions server_options{authority_->root_pem(), sensor.certificate.certificate_pem,
                                  sensor.certificate.chain_pem, nullptr};
  EXPECT_FALSE(MakeServerContext(server_options, sensor.key).ok());
}

}  // namespace
}  // namespace custos::crypto
