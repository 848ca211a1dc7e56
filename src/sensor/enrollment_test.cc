// Enrollment against a test HTTPS server that plays fleetd's API port with
// a real fleet CA (src/crypto): it sends its whole chain, root included,
// signs the CSR with IssuingAuthority::SignSensorCsr, and counts TLS
// handshakes and HTTP requests, so a test can tell that the token never
// left the sensor.
#include "sensor/enrollment.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/files.h"
#include "crypto/csr.h"
#include "crypto/key_file.h"
#include "crypto/test_authority.h"

namespace custos::sensor {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using crypto::testing::Must;
using crypto::testing::TempDir;
using nlohmann::json;

// The API port's TLS: server certificate only, the chain with the root.
ssl::context ApiContext(const fs::path& authority_dir) {
  crypto::AuthorityPaths paths(authority_dir);
  ssl::context context(ssl::context::tls_server);
  SSL_CTX* native = context.native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION);
  auto certificate = Must(crypto::ParseCertificatePem(Must(ReadFile(paths.server_certificate))));
  auto chain = Must(crypto::ParseCertificateChainPem(Must(ReadFile(paths.chain))));
  auto key = Must(crypto::ReadPrivateKeyFile(paths.server_key));
  if (SSL_CTX_use_certificate(native, certificate.get()) != 1 ||
      SSL_CTX_use_PrivateKey(native, key.get()) != 1) {
    throw std::runtime_error("cannot set up the test API context");
  }
  for (auto& link : chain) SSL_CTX_add1_chain_cert(native, link.get());
  return context;
}

class TestApiServer {
 public:
  enum class Mode { kSign, kRefuse };

  TestApiServer(const fs::path& authority_dir, Mode mode)
      : authority_(Must(crypto::IssuingAuthority::Load(authority_dir))),
        context_(ApiContext(authority_dir)),
        mode_(mode),
        acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestApiServer() {
    io_.stop();
    thread_.join();
  }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  // The server may finish a handshake after the client gave up on it.
  bool WaitForHandshakes(int count) {
    std::unique_lock lock(mutex_);
    return handshake_done_.wait_for(lock, std::chrono::seconds(10),
                                    [&] { return handshakes_ >= count; });
  }
  int requests() const { return requests_; }
  json last_request() const {
    std::lock_guard lock(mutex_);
    return last_request_;
  }

 private:
  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code error, tcp::socket socket) {
      if (!error) Serve(std::move(socket));
      Accept();
    });
  }

  // One connection, synchronously: this thread serves nothing else meanwhile.
  void Serve(tcp::socket socket) {
    boost::system::error_code error;
    ssl::stream<tcp::socket> stream(std::move(socket), context_);
    stream.handshake(ssl::stream_base::server, error);
    if (error) return;
    {
      std::lock_guard lock(mutex_);
      ++handshakes_;
    }
    handshake_done_.notify_all();
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::read(stream, buffer, request, error);
    if (error) return;
    ++requests_;
    json body = json::parse(request.body(), nullptr, false);
    {
      std::lock_guard lock(mutex_);
      last_request_ = body;
    }
    http::response<http::string_body> response;
    if (mode_ == Mode::kRefuse || request.target() != "/v1/enroll") {
      response.result(http::status::unauthorized);
      response.set(http::field::content_type, "application/problem+json");
      response.body() = json{{"type", "about:blank"},
                             {"title", "Unauthorized"},
                             {"status", 401},
                             {"detail", "the token has expired"}}
                            .dump();
    } else {
      auto csr = Must(crypto::Csr::Parse(body["csr"].get<std::string>()));
      auto issued =
          Must(authority_.SignSensorCsr(csr, {"sensor-42", "acme"}, std::chrono::days(30)));
      response.result(http::status::ok);
      response.set(http::field::content_type, "application/json");
      response.body() = json{{"sensor_id", "sensor-42"},
                             {"tenant", "acme"},
                             {"certificate", issued.certificate_pem},
                             {"chain", issued.chain_pem},
                             {"root", authority_.root_pem()},
                             {"channel", "fleet.test:8444"}}
                            .dump();
    }
    response.prepare_payload();
    http::write(stream, response, error);
    stream.shutdown(error);
  }

  crypto::IssuingAuthority authority_;
  ssl::context context_;
  Mode mode_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::condition_variable handshake_done_;
  int handshakes_ = 0;
  std::atomic<int> requests_{0};
  mutable std::mutex mutex_;
  json last_request_;
};

std::string RootHash(const fs::path& authority_dir) {
  auto root = Must(crypto::ParseCertificatePem(
      Must(ReadFile(crypto::AuthorityPaths(authority_dir).root_certificate))));
  return Must(CertificateSha256Hex(root.get()));
}

unsigned Mode(const fs::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return 0;
  return info.st_mode & 07777;
}

class EnrollmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::testing::InitTestAuthority(ca_);
    token_ = "c2VjcmV0LXRva2VuLWZvci10ZXN0cy1vbmx5LTAwMDAwMDAw." + RootHash(ca_);
  }
  EnrollOptions Options(std::uint16_t port, const std::string& host = "127.0.0.1") {
    EnrollOptions options;
    options.fleet = host + ":" + std::to_string(port);
    options.token = token_;
    options.identity_dir = identity_;
    options.name = "lab-sensor";
    options.timeout = std::chrono::seconds(10);
    return options;
  }

  TempDir dir_;
  fs::path ca_ = dir_.path() / "ca";
  fs::path identity_ = dir_.path() / "identity";
  std::string token_;
};

TEST_F(EnrollmentTest, EnrollsWithALocalKeyAndWritesTheIdentity) {
  TestApiServer server(ca_, TestApiServer::Mode::kSign);
  auto enrolled = Enroll(Options(server.port()));
  ASSERT_TRUE(enrolled.ok()) << enrolled.error().message;
  EXPECT_EQ(enrolled->sensor_id, "sensor-42");
  EXPECT_EQ(enrolled->tenant, "acme");
  EXPECT_EQ(enrolled->channel.ToString(), "fleet.test:8444");

  json request = server.last_request();
  EXPECT_EQ(request["token"], token_);
  EXPECT_EQ(request["name"], "lab-sensor");
  // Only a CSR went out: its key is the one kept here, 0600.
  std::string sent = request.dump();
  EXPECT_EQ(sent.find("PRIVATE KEY"), std::string::npos);
  IdentityPaths paths(identity_);
  auto key = Must(crypto::ReadPrivateKeyFile(paths.key));
  auto csr = Must(crypto::Csr::Parse(request["csr"].get<std::string>()));
  EXPECT_TRUE(key.SamePublicKey(csr.public_key()));
  EXPECT_EQ(Mode(paths.key), 0600u);
  EXPECT_EQ(Mode(identity_), 0700u);

  auto identity = LoadFleetIdentity(identity_);
  ASSERT_TRUE(identity.ok()) << identity.error().message;
  EXPECT_EQ(identity->sensor_id, "sensor-42");
  EXPECT_EQ(identity->api.ToString(), "127.0.0.1:" + std::to_string(server.port()));
  auto fleet = json::parse(Must(ReadFile(paths.fleet)));
  EXPECT_EQ(fleet["channel"], "fleet.test:8444");

  // Enrolling again would replace an identity in use.
  auto again = Enroll(Options(server.port()));
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("already holds an enrollment"), std::string::npos);
}

TEST_F(EnrollmentTest, WrongCaHashIsRefusedBeforeTheTokenIsSent) {
  fs::path other = dir_.path() / "other";
  crypto::testing::InitTestAuthority(other, "Other Fleet");
  TestApiServer server(ca_, TestApiServer::Mode::kSign);
  auto options = Options(server.port());
  options.token = "c2VjcmV0." + RootHash(other);
  auto enrolled = Enroll(options);
  ASSERT_FALSE(enrolled.ok());
  EXPECT_NE(enrolled.error().message.find("matching the token's CA hash"), std::string::npos)
      << enrolled.error().message;
  EXPECT_NE(enrolled.error().message.find("the token was not sent"), std::string::npos);
  EXPECT_TRUE(server.WaitForHandshakes(1));
  EXPECT_EQ(server.requests(), 0);
  EXPECT_FALSE(IsEnrolled(identity_));
}

TEST_F(EnrollmentTest, ServerCertificateNotForThatNameIsRefusedBeforeTheTokenIsSent) {
  TestApiServer server(ca_, TestApiServer::Mode::kSign);
  // The root matches, but the certificate names fleet.test and 127.0.0.1.
  auto enrolled = Enroll(Options(server.port(), "localhost"));
  ASSERT_FALSE(enrolled.ok());
  EXPECT_NE(enrolled.error().message.find("certificate verify failed"), std::string::npos)
      << enrolled.error().message;
  EXPECT_EQ(server.requests(), 0);
  EXPECT_FALSE(IsEnrolled(identity_));
}

TEST_F(EnrollmentTest, RefusedTokenShowsTheFleetsDetail) {
  TestApiServer server(ca_, TestApiServer::Mode::kRefuse);
  auto enrolled = Enroll(Options(server.port()));
  ASSERT_FALSE(enrolled.ok());
  EXPECT_NE(enrolled.error().message.find("401"), std::string::npos) << enrolled.error().message;
  EXPECT_NE(enrolled.error().message.find("the token has expired"), std::string::npos)
      << enrolled.error().message;
  EXPECT_EQ(server.requests(), 1);
  EXPECT_FALSE(IsEnrolled(identity_));
  // The key stays for the next attempt, which uses it again.
  auto key = Must(crypto::ReadPrivateKeyFile(IdentityPaths(identity_).key));
  TestApiServer signing(ca_, TestApiServer::Mode::kSign);
  ASSERT_TRUE(Enroll(Options(signing.port())).ok());
  auto csr = Must(crypto::Csr::Parse(signing.last_request()["csr"].get<std::string>()));
  EXPECT_TRUE(key.SamePublicKey(csr.public_key()));
}

TEST_F(EnrollmentTest, UnreachableFleetIsNamed) {
  std::uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor closed(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    port = closed.local_endpoint().port();
  }
  auto enrolled = Enroll(Options(port));
  ASSERT_FALSE(enrolled.ok());
  EXPECT_NE(
      enrolled.error().message.find("cannot reach the fleet at 127.0.0.1:" + std::to_string(port)),
      std::string::npos)
      << enrolled.error().message;
}

TEST(EnrollmentToken, IsSecretDotCaHash) {
  std::string hash(64, 'a');
  auto token = ParseEnrollmentToken("abc_-XYZ." + hash);
  ASSERT_TRUE(token.ok()) << token.error().message;
  EXPECT_EQ(token->ca_hash, hash);
  EXPECT_EQ(token->text, "abc_-XYZ." + hash);
  EXPECT_EQ(ParseEnrollmentToken("abc." + std::string(64, 'A'))->ca_hash, hash);
  EXPECT_FALSE(ParseEnrollmentToken("abc").ok());
  EXPECT_FALSE(ParseEnrollmentToken("." + hash).ok());
  EXPECT_FALSE(ParseEnrollmentToken("abc." + std::string(63, 'a')).ok());
  EXPECT_FALSE(ParseEnrollmentToken("abc." + std::string(63, 'a') + "g").ok());
  EXPECT_FALSE(ParseEnrollmentToken("a+b." + hash).ok());
}

}  // namespace
}  // namespace custos::sensor
