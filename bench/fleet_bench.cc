// custos_fleet_bench: simulated sensors against a real custos-fleetd.
// It makes a fleet folder with `custos fleet init`, starts custos-fleetd on
// free loopback ports, and then, as the sensors of docs/fleet-protocol.md
// would:
//   - enrolls sensors (key pair and CSR made here, the fleet trusted only
//     once the root it sends hashes to the token's CA hash and the server
//     certificate verifies against that root; POST /v1/enroll);
//   - holds one mutual-TLS WebSocket per sensor to /v1/channel (hello, then
//     event batches, at most 4 unacknowledged) and times every event from
//     the moment it was made until the ack that covers its seq arrives, so a
//     full window or a slow fleet counts against the latency;
//   - floods batches of 500 events for throughput;
//   - checks that the fleet stored exactly the events it acknowledged (the
//     SQLite rows per sensor, and one sensor's events through GET /v1/events).
// Prints the BENCH lines of bench/run on stdout, other figures on stderr.
// One process: a few io_context threads drive every connection; each sensor
// lives on one io_context, so its state needs no lock. fleetd is stopped and
// the folder removed on every exit path, SIGINT and SIGTERM included.
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/files.h"
#include "common/log.h"
#include "common/process.h"
#include "common/unique_fd.h"
#include "crypto/csr.h"
#include "crypto/key.h"
#include "crypto/openssl_util.h"
#include "crypto/tls.h"

namespace custos::fleetbench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr char kHost[] = "127.0.0.1";
constexpr char kTenant[] = "bench";
constexpr std::size_t kWindow = 4;  // unacknowledged batches the protocol allows
constexpr auto kStepTimeout = std::chrono::seconds(15);
constexpr auto kDrainTimeout = std::chrono::seconds(30);

std::atomic<bool> interrupted{false};

void OnSignal(int) { interrupted = true; }

double Milliseconds(Clock::duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

// Fields of what the fleet sends, read without throwing: "" and 0 when
// absent or of another type.
std::string StringField(const json& object, const char* name) {
  auto found = object.is_object() ? object.find(name) : object.end();
  return found != object.end() && found->is_string() ? found->get<std::string>() : "";
}

std::uint64_t UnsignedField(const json& object, const char* name) {
  auto found = object.is_object() ? object.find(name) : object.end();
  return found != object.end() && found->is_number_unsigned() ? found->get<std::uint64_t>() : 0;
}

// Nearest rank; `values` is sorted in place.
template <typename T>
double Percentile(std::vector<T>& values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  auto rank = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(values.size())));
  return static_cast<double>(values[std::clamp<std::size_t>(rank, 1, values.size()) - 1]);
}

// The lower-case hex SHA-256 of a certificate's DER: a token's <ca-hash>.
std::string CertificateSha256(X509* certificate) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(certificate, EVP_sha256(), digest, &length) != 1) return "";
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

// "2026-11-23T15:04:05.123456+0000" (EVE).
std::string EveTimestamp(std::chrono::system_clock::time_point time) {
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(micros / 1000000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  std::size_t length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + length, sizeof text - length, ".%06lld+0000",
                static_cast<long long>(micros % 1000000));
  return text;
}

// User plus system CPU seconds of a process (/proc/PID/stat) or, for -1,
// of this one: to tell whether fleetd or the simulator used the cores.
double CpuSeconds(pid_t pid) {
  if (pid < 0) {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval& time) { return time.tv_sec + time.tv_usec / 1e6; };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
  }
  auto stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return 0;
  // Fields 14 and 15 (utime, stime) follow the ")" that ends the command name.
  std::istringstream fields(stat->substr(stat->rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

Result<double> ResidentMegabytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;  // kB
  }
  return Error{"no VmRSS for pid " + std::to_string(pid)};
}

// Every sensor holds a socket and fleetd one per sensor; fleetd inherits
// the limit because it is raised before fleetd is spawned.
Status RaiseFileLimit(rlim_t needed) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return ErrnoError("getrlimit");
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return ErrnoError("setrlimit RLIMIT_NOFILE");
  if (limit.rlim_cur < needed) {
    return Error{"RLIMIT_NOFILE hard limit " + std::to_string(limit.rlim_max) + " is below the " +
                 std::to_string(needed) + " descriptors this run needs"};
  }
  return {};
}

// A port the kernel chose on loopback, free when this returns.
Result<std::uint16_t> FreeLoopbackPort() {
  asio::io_context io;
  tcp::acceptor acceptor(io);
  boost::system::error_code error;
  acceptor.open(tcp::v4(), error);
  if (!error) acceptor.bind({asio::ip::make_address(kHost), 0}, error);
  if (error) return Error{"cannot find a free port: " + error.message()};
  return acceptor.local_endpoint().port();
}

// Counts completions down; the main thread waits for zero with a deadline.
class Countdown {
 public:
  explicit Countdown(std::size_t count) : remaining_(count) {}
  void Done() {
    std::lock_guard lock(mutex_);
    if (remaining_ > 0 && --remaining_ == 0) zero_.notify_all();
  }
  // False on the deadline or an interrupt.
  bool WaitUntil(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    while (remaining_ > 0) {
      if (interrupted || Clock::now() >= deadline) return false;
      // Woken at the latest every 200 ms to notice SIGINT.
      zero_.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(200)));
    }
    return true;
  }

 private:
  std::mutex mutex_;
  std::condition_variable zero_;
  std::size_t remaining_;
};

// --- the fleet: folder and process ----------------------------------------

struct Tools {
  std::string cli = CUSTOS_CLI;
  std::string fleetd = CUSTOS_FLEETD;
};

class Fleet {
 public:
  static Result<std::unique_ptr<Fleet>> Start(const Tools& tools) {
    char scratch[] = "/tmp/custos-fleet-bench.XXXXXX";
    if (!::mkdtemp(scratch)) return ErrnoError("mkdtemp");
    std::unique_ptr<Fleet> fleet(new Fleet(scratch));
    CUSTOS_TRY(fleet->Init(tools));
    CUSTOS_TRY(fleet->Spawn(tools));
    return fleet;
  }

  ~Fleet() {
    if (auto stopped = Stop(); !stopped.ok()) spdlog::warn("{}", stopped.error().message);
    std::error_code ignored;
    fs::remove_all(scratch_, ignored);
  }

  // SIGTERM, then SIGKILL if fleetd is not gone within 10 s.
  Status Stop() {
    if (pid_ <= 0) return {};
    pid_t pid = std::exchange(pid_, -1);
    ::kill(pid, SIGTERM);
    UniqueFd process(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    bool exited = false;
    if (process.valid()) {
      pollfd ready{process.get(), POLLIN, 0};
      exited = ::poll(&ready, 1, 10000) == 1;
    }
    if (!exited) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!exited) return Error{"custos-fleetd did not stop within 10 s of SIGTERM; killed"};
    if (int code = ExitCodeFromStatus(status); code != 0) {
      return Error{"custos-fleetd exited with " + std::to_string(code) + " after SIGTERM"};
    }
    return {};
  }

  // The end of fleetd's log, for error reports.
  std::string LogTail(std::size_t lines = 15) const {
    auto text = ReadFile(log_);
    if (!text.ok()) return "";
    std::size_t start = text->size();
    for (std::size_t found = 0; start > 0 && found <= lines;) {
      if ((*text)[--start] == '\n') ++found;
    }
    return text->substr(start);
  }

  pid_t pid() const { return pid_; }
  const fs::path& dir() const { return dir_; }
  const std::string& admin_token() const { return admin_token_; }
  const std::string& root_pem() const { return root_pem_; }
  tcp::endpoint api() const { return {asio::ip::make_address(kHost), api_port_}; }
  std::string api_host() const { return std::string(kHost) + ":" + std::to_string(api_port_); }

 private:
  explicit Fleet(fs::path scratch)
      : scratch_(std::move(scratch)), dir_(scratch_ / "fleet"), log_(scratch_ / "fleetd.log") {}

  Status Init(const Tools& tools) {
    auto init = RunCommand(
        {tools.cli, "fleet", "init", "--dir", dir_.string(), "--address", kHost, "--save-token"});
    if (!init.ok()) return Context("custos fleet init", init.error());
    if (init->exit_code != 0) {
      return Error{"custos fleet init failed (" + std::to_string(init->exit_code) +
                   "): " + init->output};
    }
    auto token = ReadFile(dir_ / "admin.token");
    if (!token.ok()) return token.error();
    admin_token_ = *token;
    while (!admin_token_.empty() && std::isspace(static_cast<unsigned char>(admin_token_.back()))) {
      admin_token_.pop_back();
    }
    auto root = ReadFile(dir_ / "root" / "root.crt");
    if (!root.ok()) return root.error();
    root_pem_ = std::move(*root);
    return {};
  }

  Status Spawn(const Tools& tools) {
    auto api = FreeLoopbackPort();
    if (!api.ok()) return api.error();
    auto channel = FreeLoopbackPort();
    if (!channel.ok()) return channel.error();
    api_port_ = *api;
    UniqueFd log(::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!log.valid()) return ErrnoError("cannot create " + log_.string());
    std::string host = kHost;
    auto pid = SpawnProcess(
        {tools.fleetd, "--dir", dir_.string(), "--api", host + ":" + std::to_string(*api),
         "--channel", host + ":" + std::to_string(*channel)},
        log.get(), log.get());
    if (!pid.ok()) return Context("custos-fleetd", pid.error());
    pid_ = *pid;
    return WaitForApi();
  }

  // Until the API port accepts a connection, fleetd exits, or 15 s pass.
  Status WaitForApi() {
    auto deadline = Clock::now() + kStepTimeout;
    asio::io_context io;
    while (Clock::now() < deadline && !interrupted) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return Error{"custos-fleetd exited with " + std::to_string(ExitCodeFromStatus(status)) +
                     " at start:\n" + LogTail()};
      }
      tcp::socket socket(io);
      boost::system::error_code error;
      socket.connect(api(), error);
      if (!error) return {};
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return Error{"custos-fleetd's API port did not open within 15 s:\n" + LogTail()};
  }

  fs::path scratch_, dir_, log_;
  pid_t pid_ = -1;
  std::string admin_token_, root_pem_;
  std::uint16_t api_port_ = 0;
};

// --- network threads ---------------------------------------------------------

// One io_context per thread: whatever is bound to one runs on one thread.
class Engine {
 public:
  explicit Engine(int threads) {
    for (int i = 0; i < threads; ++i) contexts_.push_back(std::make_unique<asio::io_context>(1));
    for (auto& io : contexts_) {
      guards_.emplace_back(asio::make_work_guard(*io));
      threads_.emplace_back([context = io.get()] { context->run(); });
    }
  }
  ~Engine() { Stop(); }
  // Ends the threads; handlers still queued are dropped, not run.
  void Stop() {
    guards_.clear();
    for (auto& io : contexts_) io->stop();
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }
  asio::io_context& at(std::size_t index) { return *contexts_[index % contexts_.size()]; }

 private:
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

// --- HTTPS: the admin API and enrollment ---------------------------------

struct HttpReply {
  int status = 0;
  std::string body;
};

// Checks the server after the TLS handshake, before the request is sent.
using ServerCheck = std::function<Status(SSL*)>;

// One request over a fresh TLS connection, as the CLI and sensors make them.
class HttpsExchange : public std::enable_shared_from_this<HttpsExchange> {
 public:
  using Done = std::function<void(Result<HttpReply>)>;

  HttpsExchange(asio::io_context& io, ssl::context& context) : stream_(io, context) {}

  void Run(const tcp::endpoint& server, http::request<http::string_body> request, ServerCheck check,
           Done done) {
    request_ = std::move(request);
    check_ = std::move(check);
    done_ = std::move(done);
    beast::get_lowest_layer(stream_).expires_after(kStepTimeout);
    beast::get_lowest_layer(stream_).async_connect(
        server, [self = shared_from_this()](beast::error_code error) { self->OnConnect(error); });
  }

 private:
  void OnConnect(beast::error_code error) {
    if (error) return Finish(Error{"connect: " + error.message()});
    stream_.async_handshake(ssl::stream_base::client,
                            [self = shared_from_this()](beast::error_code handshake_error) {
                              self->OnHandshake(handshake_error);
                            });
  }

  void OnHandshake(beast::error_code error) {
    if (error) return Finish(Error{"TLS handshake: " + error.message()});
    if (check_) {
      if (auto checked = check_(stream_.native_handle()); !checked.ok()) {
        return Finish(checked.error());
      }
    }
    http::async_write(stream_, request_,
                      [self = shared_from_this()](beast::error_code write_error, std::size_t) {
                        if (write_error)
                          return self->Finish(Error{"send: " + write_error.message()});
                        self->Read();
                      });
  }

  void Read() {
    parser_.body_limit(64 * 1024 * 1024);
    http::async_read(stream_, buffer_, parser_,
                     [self = shared_from_this()](beast::error_code error, std::size_t) {
                       if (error) return self->Finish(Error{"read reply: " + error.message()});
                       HttpReply reply;
                       reply.status = static_cast<int>(self->parser_.get().result_int());
                       reply.body = std::move(self->parser_.get().body());
                       self->Finish(std::move(reply));
                     });
  }

  void Finish(Result<HttpReply> result) {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(stream_).close();
    if (done_) std::exchange(done_, nullptr)(std::move(result));
  }

  beast::ssl_stream<beast::tcp_stream> stream_;
  http::request<http::string_body> request_;
  ServerCheck check_;
  Done done_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
};

http::request<http::string_body> MakeRequest(http::verb method, const std::string& target,
                                             const std::string& host,
                                             const std::string& bearer = "",
                                             const std::string& body = "") {
  http::request<http::string_body> request(method, target, 11);
  request.set(http::field::host, host);
  request.set(http::field::user_agent, "custos-fleet-bench");
  if (!bearer.empty()) request.set(http::field::authorization, "Bearer " + bearer);
  if (!body.empty()) {
    request.set(http::field::content_type, "application/json");
    request.body() = body;
  }
  request.keep_alive(false);
  request.prepare_payload();
  return request;
}

// The operator's view: trusts only the fleet root, checks the address.
Result<ssl::context> MakeAdminContext(const std::string& root_pem) {
  try {
    ssl::context context(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_3_VERSION);
    context.add_certificate_authority(asio::buffer(root_pem));
    context.set_verify_mode(ssl::verify_peer);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(context.native_handle()), kHost);
    return context;
  } catch (const std::exception& exception) {
    return Error{std::string("admin TLS context: ") + exception.what()};
  }
}

// An enrolling sensor trusts nothing yet: the handshake accepts any chain,
// and CheckFleetByHash decides before a byte of the request is sent.
Result<ssl::context> MakeEnrollContext() {
  try {
    ssl::context context(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_3_VERSION);
    context.set_verify_mode(ssl::verify_none);
    return context;
  } catch (const std::exception& exception) {
    return Error{std::string("enrollment TLS context: ") + exception.what()};
  }
}

// The chain the fleet sent must hold a self-signed root whose DER hashes to
// `ca_hash`, and the server certificate must verify against that root for
// `address`.
Status CheckFleetByHash(SSL* ssl, const std::string& ca_hash, const std::string& address) {
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);  // client side: leaf first
  if (!chain || sk_X509_num(chain) == 0) return Error{"the fleet sent no certificate"};
  X509* root = nullptr;
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    X509* certificate = sk_X509_value(chain, i);
    bool self_signed = (X509_get_extension_flags(certificate) & EXFLAG_SS) != 0;
    if (self_signed && CertificateSha256(certificate) == ca_hash) root = certificate;
  }
  if (!root) return Error{"no certificate the fleet sent matches the token's CA hash"};
  crypto::X509StorePtr store(X509_STORE_new());
  crypto::X509StoreContextPtr context(X509_STORE_CTX_new());
  if (!store || !context || X509_STORE_add_cert(store.get(), root) != 1 ||
      X509_STORE_CTX_init(context.get(), store.get(), sk_X509_value(chain, 0), chain) != 1) {
    return crypto::OpenSslError("cannot set up the fleet's verification");
  }
  X509_STORE_CTX_set_purpose(context.get(), X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_ip_asc(X509_STORE_CTX_get0_param(context.get()), address.c_str());
  if (X509_verify_cert(context.get()) != 1) {
    return Error{std::string("the fleet's certificate does not verify against its root: ") +
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(context.get()))};
  }
  return {};
}

std::string ProblemText(const HttpReply& reply) {
  std::string text = "HTTP " + std::to_string(reply.status) + ": ";
  return text + reply.body.substr(0, 512);
}

// --- sensors -----------------------------------------------------------------

// A sensor's identity and its spool's counters, kept across phases (seqs
// only grow). Touched only by the io_context of the channel that runs it.
struct Sensor {
  std::string id;
  std::optional<crypto::KeyPair> key;
  std::unique_ptr<ssl::context> tls;
  tcp::endpoint channel;
  // As a new spool does (docs/fleet-protocol.md): the first seq is the time
  // in microseconds, so seqs are large and differ between sensors.
  std::uint64_t first_seq =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  std::uint64_t next_seq = first_seq;
  std::uint64_t acked = first_seq - 1;  // highest seq the fleet acknowledged
  std::uint64_t next_batch = 1;

  std::uint64_t acknowledged() const { return acked + 1 - first_seq; }
};

struct Enrolled {
  std::unique_ptr<Sensor> sensor;
  Clock::duration took{};  // key pair to verified certificate
};

// Enrollment as docs/fleet-protocol.md describes it, timed from the key
// pair to the checked answer. Runs on `io`'s thread.
class Enrollment : public std::enable_shared_from_this<Enrollment> {
 public:
  using Done = std::function<void(Result<Enrolled>)>;

  Enrollment(asio::io_context& io, ssl::context& enroll_tls, const Fleet& fleet, std::string name,
             Done done)
      : io_(io),
        enroll_tls_(enroll_tls),
        fleet_(fleet),
        name_(std::move(name)),
        done_(std::move(done)) {}

  void Run(const std::string& token) {
    auto dot = token.rfind('.');
    if (dot == std::string::npos) return Finish(Error{"token without a CA hash: " + token});
    ca_hash_ = token.substr(dot + 1);
    start_ = Clock::now();
    auto key = crypto::KeyPair::Generate();
    if (!key.ok()) return Finish(key.error());
    auto csr = crypto::Csr::Create(*key, name_);
    if (!csr.ok()) return Finish(csr.error());
    key_.emplace(std::move(*key));
    json body = {{"token", token}, {"csr", csr->Pem()}, {"name", name_}};
    auto exchange = std::make_shared<HttpsExchange>(io_, enroll_tls_);
    exchange->Run(
        fleet_.api(),
        MakeRequest(http::verb::post, "/v1/enroll", fleet_.api_host(), "", body.dump()),
        [hash = ca_hash_](SSL* ssl) { return CheckFleetByHash(ssl, hash, kHost); },
        [self = shared_from_this()](Result<HttpReply> reply) { self->OnReply(std::move(reply)); });
  }

 private:
  void OnReply(Result<HttpReply> reply) {
    if (!reply.ok()) return Finish(Context("POST /v1/enroll", reply.error()));
    if (reply->status != 200) return Finish(Error{"POST /v1/enroll: " + ProblemText(*reply)});
    json answer = json::parse(reply->body, nullptr, false);
    if (!answer.is_object()) return Finish(Error{"POST /v1/enroll: the answer is not JSON"});
    for (const char* field : {"sensor_id", "tenant", "certificate", "chain", "root", "channel"}) {
      if (!answer.contains(field) || !answer[field].is_string()) {
        return Finish(Error{std::string("POST /v1/enroll: the answer lacks \"") + field + "\""});
      }
    }
    auto root = crypto::ParseCertificatePem(answer["root"].get<std::string>());
    if (!root.ok()) return Finish(Context("enrollment root", root.error()));
    if (CertificateSha256(root->get()) != ca_hash_) {
      return Finish(Error{"the root in the enrollment answer is not the token's CA"});
    }
    auto sensor = std::make_unique<Sensor>();
    sensor->id = answer["sensor_id"].get<std::string>();
    auto channel = answer["channel"].get<std::string>();
    auto colon = channel.rfind(':');
    boost::system::error_code error;
    std::uint16_t port = 0;
    if (colon != std::string::npos) {
      auto address = asio::ip::make_address(channel.substr(0, colon), error);
      auto parsed =
          std::from_chars(channel.data() + colon + 1, channel.data() + channel.size(), port);
      if (!error && parsed.ec == std::errc() && port != 0) sensor->channel = {address, port};
    }
    if (port == 0 || error) {
      return Finish(Error{"the enrollment answer's channel is not an address: " + channel});
    }
    auto address = sensor->channel.address();
    crypto::ClientTlsOptions options;
    options.root_pem = answer["root"].get<std::string>();
    options.certificate_pem = answer["certificate"].get<std::string>();
    options.chain_pem = answer["chain"].get<std::string>();
    options.server_name = address.to_string();
    auto tls = crypto::MakeClientContext(options, *key_);
    if (!tls.ok()) return Finish(Context("channel TLS context", tls.error()));
    Enrolled enrolled;
    enrolled.took = Clock::now() - start_;
    sensor->tls = std::make_unique<ssl::context>(std::move(*tls));
    sensor->key = std::move(key_);
    enrolled.sensor = std::move(sensor);
    Finish(std::move(enrolled));
  }

  void Finish(Result<Enrolled> result) {
    if (done_) std::exchange(done_, nullptr)(std::move(result));
  }

  asio::io_context& io_;
  ssl::context& enroll_tls_;
  const Fleet& fleet_;
  std::string name_;
  Done done_;
  std::string ca_hash_;
  std::optional<crypto::KeyPair> key_;
  Clock::time_point start_;
};

// The operator's side: tokens, the event listing.
class Admin {
 public:
  Admin(Engine& engine, const Fleet& fleet, ssl::context& tls)
      : engine_(engine), fleet_(fleet), tls_(tls) {}

  void Call(std::size_t thread, http::verb method, const std::string& target,
            const std::string& body, HttpsExchange::Done done) {
    auto exchange = std::make_shared<HttpsExchange>(engine_.at(thread), tls_);
    exchange->Run(fleet_.api(),
                  MakeRequest(method, target, fleet_.api_host(), fleet_.admin_token(), body),
                  nullptr, std::move(done));
  }

  Result<HttpReply> CallAndWait(http::verb method, const std::string& target) {
    std::promise<Result<HttpReply>> promise;
    auto future = promise.get_future();
    Call(0, method, target, "",
         [&promise](Result<HttpReply> reply) { promise.set_value(std::move(reply)); });
    return future.get();
  }

  // POST /v1/tokens, then `done` with the token.
  void CreateToken(std::size_t thread, std::function<void(Result<std::string>)> done) {
    json body = {{"tenant", kTenant}, {"ttl_seconds", 3600}};
    Call(thread, http::verb::post, "/v1/tokens", body.dump(),
         [done = std::move(done)](Result<HttpReply> reply) {
           if (!reply.ok()) return done(Context("POST /v1/tokens", reply.error()));
           json answer = json::parse(reply->body, nullptr, false);
           if (reply->status != 201 || !answer.is_object() || !answer.contains("token") ||
               !answer["token"].is_string()) {
             return done(Error{"POST /v1/tokens: " + ProblemText(*reply)});
           }
           done(answer["token"].get<std::string>());
         });
  }

 private:
  Engine& engine_;
  const Fleet& fleet_;
  ssl::context& tls_;
};

// Enrolls `count` sensors: the first `timed` one at a time (their times
// are the figure), the rest `parallel` at once. Each gets a fresh token.
struct EnrollmentRun {
  std::vector<std::unique_ptr<Sensor>> sensors;
  std::vector<double> sequential_ms, parallel_ms;
};

// Shared with the callbacks, which may outlive a wait that timed out.
struct EnrollState {
  EnrollState(Engine& engine_in, Admin& admin_in, const Fleet& fleet_in, ssl::context& tls_in,
              std::size_t count)
      : engine(engine_in),
        admin(admin_in),
        fleet(fleet_in),
        tls(tls_in),
        sensors(count),
        took(count) {}

  void Failed(const Error& error) {
    std::lock_guard lock(mutex);
    if (!failure) failure = error;
  }
  std::optional<Error> failure_now() {
    std::lock_guard lock(mutex);
    return failure;
  }

  Engine& engine;
  Admin& admin;
  const Fleet& fleet;
  ssl::context& tls;
  std::vector<std::unique_ptr<Sensor>> sensors;
  std::vector<Clock::duration> took;
  std::mutex mutex;
  std::optional<Error> failure;
  std::atomic<std::size_t> next{0};
};

// A token, then the enrollment, on thread `index`; `after` when done.
void EnrollOne(const std::shared_ptr<EnrollState>& state, std::size_t index,
               std::function<void()> after) {
  state->admin.CreateToken(index, [state, index, after](Result<std::string> token) {
    if (!token.ok()) {
      state->Failed(token.error());
      return after();
    }
    char name[32];
    std::snprintf(name, sizeof name, "bench-%04zu", index);
    auto enrollment =
        std::make_shared<Enrollment>(state->engine.at(index), state->tls, state->fleet, name,
                                     [state, index, after](Result<Enrolled> done) {
                                       if (!done.ok()) {
                                         state->Failed(done.error());
                                       } else {
                                         state->took[index] = done->took;
                                         state->sensors[index] = std::move(done->sensor);
                                       }
                                       after();
                                     });
    enrollment->Run(*token);
  });
}

// Takes the next index until none is left, then counts itself done.
void EnrollNext(const std::shared_ptr<EnrollState>& state, std::size_t end,
                const std::shared_ptr<Countdown>& workers) {
  std::size_t index = state->next++;
  if (index >= end || state->failure_now()) return workers->Done();
  EnrollOne(state, index, [state, end, workers] { EnrollNext(state, end, workers); });
}

Result<EnrollmentRun> EnrollSensors(Engine& engine, Admin& admin, const Fleet& fleet,
                                    ssl::context& enroll_tls, std::size_t count, std::size_t timed,
                                    std::size_t parallel) {
  auto state = std::make_shared<EnrollState>(engine, admin, fleet, enroll_tls, count);
  EnrollmentRun run;
  std::size_t first = std::min(timed, count);
  for (std::size_t i = 0; i < first; ++i) {
    auto one = std::make_shared<Countdown>(1);
    EnrollOne(state, i, [one] { one->Done(); });
    if (!one->WaitUntil(Clock::now() + 2 * kStepTimeout)) {
      return Error{interrupted ? "interrupted" : "enrollment timed out"};
    }
    if (auto error = state->failure_now()) {
      return Context("enrolling sensor " + std::to_string(i), *error);
    }
    run.sequential_ms.push_back(Milliseconds(state->took[i]));
  }
  state->next = first;
  std::size_t workers = std::min(parallel, count - first);
  auto all = std::make_shared<Countdown>(workers);
  for (std::size_t i = 0; i < workers; ++i) EnrollNext(state, count, all);
  if (!all->WaitUntil(Clock::now() + std::chrono::seconds(120))) {
    return Error{interrupted ? "interrupted" : "enrolling the sensors took more than 120 s"};
  }
  if (auto error = state->failure_now()) return Context("enrolling sensors", *error);
  for (std::size_t i = first; i < count; ++i) {
    run.parallel_ms.push_back(Milliseconds(state->took[i]));
  }
  run.sensors = std::move(state->sensors);
  return run;
}

// --- the channel -------------------------------------------------------------

enum class Load {
  kRate,   // `events_per_tick` events every `tick`
  kFlood,  // full batches whenever the window has room
};

struct Plan {
  Load load = Load::kRate;
  Clock::duration tick = std::chrono::milliseconds(100);
  std::size_t events_per_tick = 2;
  std::size_t batch_events = 500;
  std::size_t event_bytes = 200;
  bool record_latency = true;
};

// Builds `events` messages by appending text: the flood phase makes tens of
// megabytes of them a second, on the same two cores as fleetd.
class BatchWriter {
 public:
  explicit BatchWriter(std::size_t event_bytes) {
    // The body's fixed part is about 110 bytes; the rest is padding.
    pad_.assign(event_bytes > 110 ? event_bytes - 110 : 1, 'x');
  }

  std::string Build(std::uint64_t batch, std::uint64_t first_seq, std::size_t count) const {
    auto now = std::chrono::system_clock::now();
    std::string timestamp = EveTimestamp(now);
    std::string sent_us = std::to_string(
        std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count());
    std::string text;
    text.reserve(count * (pad_.size() + 200) + 64);
    text += R"({"type":"events","batch":)";
    text += std::to_string(batch);
    text += R"(,"events":[)";
    for (std::size_t i = 0; i < count; ++i) {
      std::string seq = std::to_string(first_seq + i);
      if (i > 0) text += ',';
      text += R"({"seq":)";
      text += seq;
      text += R"(,"topic":"alert","instrument":"bench","event":"{\"timestamp\":\")";
      text += timestamp;
      text += R"(\",\"event_type\":\"bench\",\"seq\":)";
      text += seq;
      text += R"(,\"sent_us\":)";
      text += sent_us;
      text += R"(,\"pad\":\")";
      text += pad_;
      text += R"(\"}"})";
    }
    text += "]}";
    return text;
  }

 private:
  std::string pad_;
};

// One sensor's WebSocket for one phase. Lives on one io_context.
class Channel : public std::enable_shared_from_this<Channel> {
 public:
  Channel(asio::io_context& io, Sensor& sensor, const Plan& plan,
          std::shared_ptr<const BatchWriter> writer)
      : sensor_(sensor),
        plan_(plan),
        writer_(std::move(writer)),
        ws_(io, *sensor.tls),
        deadline_(io),
        tick_timer_(io),
        heartbeat_timer_(io) {}

  // `connected` runs once: after the welcome, or after a failure.
  void Connect(std::function<void()> connected) {
    connected_ = std::move(connected);
    connect_start_ = Clock::now();
    ArmDeadline(kStepTimeout, "no welcome within 15 s");
    beast::get_lowest_layer(ws_).async_connect(
        sensor_.channel,
        [self = shared_from_this()](beast::error_code error) { self->OnConnect(error); });
  }

  // Sends from `start` until `end`, then waits for every ack and closes.
  // `finished` runs once: after the close, or after a failure.
  void Run(Clock::time_point start, Clock::time_point end, std::function<void()> finished) {
    finished_ = std::move(finished);
    if (failed_) return Notify();
    end_ = end;
    acked_before_ = sensor_.acked;
    ArmDeadline(end - Clock::now() + kDrainTimeout,
                "events not all acknowledged 30 s after the end");
    next_tick_ = start;
    if (plan_.load == Load::kRate) {
      // Sensors tick out of step, as real ones do.
      std::uniform_int_distribution<std::int64_t> phase(0, plan_.tick.count() - 1);
      std::mt19937_64 random(std::hash<std::string>{}(sensor_.id));
      next_tick_ += Clock::duration(phase(random));
    }
    tick_timer_.expires_at(next_tick_);
    tick_timer_.async_wait([self = shared_from_this()](beast::error_code error) {
      if (!error) self->OnTick();
    });
  }

  const std::string& error() const { return error_; }
  std::vector<std::uint32_t>& latencies_us() { return latencies_us_; }
  std::uint64_t acked_in_run() const { return sensor_.acked - acked_before_; }
  std::uint64_t batches_acked() const { return batches_acked_; }
  Clock::time_point last_ack() const { return last_ack_; }
  Clock::duration connect_time() const { return connect_time_; }

 private:
  struct Batch {
    std::uint64_t id;
    std::uint64_t last_seq;
  };

  // --- connecting ----------------------------------------------------------

  void OnConnect(beast::error_code error) {
    if (error) return Fail("connect: " + error.message());
    ws_.next_layer().async_handshake(
        ssl::stream_base::client, [self = shared_from_this()](beast::error_code handshake_error) {
          self->OnTlsHandshake(handshake_error);
        });
  }

  void OnTlsHandshake(beast::error_code error) {
    if (error) return Fail("TLS handshake: " + error.message());
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
    std::string host = sensor_.channel.address().to_string();
    host += ':';
    host += std::to_string(sensor_.channel.port());
    ws_.async_handshake(host, "/v1/channel",
                        [self = shared_from_this()](beast::error_code upgrade_error) {
                          self->OnUpgrade(upgrade_error);
                        });
  }

  void OnUpgrade(beast::error_code error) {
    if (error) return Fail("WebSocket upgrade: " + error.message());
    ws_.text(true);
    Send(json{{"type", "hello"},
              {"version", 1},
              {"sensor_id", sensor_.id},
              {"state_version", 0},
              {"spool", sensor_.acked + 1}}
             .dump());
    Read();
  }

  void OnWelcome(const json& message) {
    if (StringField(message, "sensor_id") != sensor_.id) {
      return Fail("welcome names another sensor: " + message.dump());
    }
    welcomed_ = true;
    auto seconds = std::clamp<std::uint64_t>(UnsignedField(message, "heartbeat_seconds"), 1, 3600);
    heartbeat_ = std::chrono::seconds(seconds);
    connect_time_ = Clock::now() - connect_start_;
    deadline_.cancel();
    SendHeartbeat();
    Notify();
  }

  // --- messages ------------------------------------------------------------

  void Read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code error, std::size_t) {
      self->OnRead(error);
    });
  }

  void OnRead(beast::error_code error) {
    if (error) {
      if (closing_) return;
      std::string why = "the fleet closed the channel: " + error.message();
      if (ws_.reason().code != websocket::close_code::none) {
        why += " (" + std::string(ws_.reason().reason.c_str()) + ")";
      }
      return Fail(why);
    }
    json message = json::parse(beast::buffers_to_string(buffer_.data()), nullptr, false);
    buffer_.consume(buffer_.size());
    std::string type = StringField(message, "type");
    if (type == "ack") {
      if (!OnAck(message)) return;
    } else if (type == "welcome" && !welcomed_) {
      OnWelcome(message);
    } else if (type == "error") {
      return Fail("the fleet sent error: " + StringField(message, "detail"));
    } else if (type.empty()) {
      return Fail("the fleet sent something that is not a message");
    }
    // desired_state and command do not come: the bench sets none.
    if (!failed_) Read();
  }

  // An ack covers every seq up to its up_to_seq, whichever batch it names.
  bool OnAck(const json& message) {
    auto up_to = UnsignedField(message, "up_to_seq");
    if (up_to > sent_up_to()) {
      Fail("ack beyond the last seq sent (" + std::to_string(sent_up_to()) +
           "): " + message.dump());
      return false;
    }
    while (!inflight_.empty() && inflight_.front().last_seq <= up_to) {
      inflight_.pop_front();
      ++batches_acked_;
    }
    auto now = Clock::now();
    while (sensor_.acked < up_to) {
      if (plan_.record_latency) {
        auto took = std::chrono::duration_cast<std::chrono::microseconds>(now - made_.front());
        latencies_us_.push_back(static_cast<std::uint32_t>(took.count()));
      }
      made_.pop_front();
      ++sensor_.acked;
    }
    last_ack_ = now;
    Pump();
    return true;
  }

  // --- sending -------------------------------------------------------------

  void OnTick() {
    if (closing_ || failed_) return;
    if (next_tick_ >= end_) {
      generating_ = false;
      return Pump();
    }
    if (plan_.load == Load::kRate) {
      Make(plan_.events_per_tick);
      next_tick_ += plan_.tick;
    } else {
      next_tick_ = end_;  // the flood fills the window from the acks on
    }
    Pump();
    tick_timer_.expires_at(next_tick_);
    tick_timer_.async_wait([self = shared_from_this()](beast::error_code error) {
      if (!error) self->OnTick();
    });
  }

  void Make(std::size_t count) {
    auto now = Clock::now();
    for (std::size_t i = 0; i < count; ++i) made_.push_back(now);
    sensor_.next_seq += count;
  }

  // Sends what the window allows; closes once all is made and acknowledged.
  void Pump() {
    if (closing_ || failed_) return;
    while (inflight_.size() < kWindow) {
      if (plan_.load == Load::kFlood && generating_ && Clock::now() < end_)
        Make(plan_.batch_events);
      std::uint64_t unsent = sensor_.next_seq - 1 - sent_up_to();
      if (unsent == 0) break;
      std::size_t count =
          static_cast<std::size_t>(std::min<std::uint64_t>(unsent, plan_.batch_events));
      std::uint64_t first = sent_up_to() + 1;
      std::uint64_t id = sensor_.next_batch++;
      inflight_.push_back({id, first + count - 1});
      Send(writer_->Build(id, first, count));
    }
    if (!generating_ && inflight_.empty() && sensor_.acked == sensor_.next_seq - 1) Close();
  }

  std::uint64_t sent_up_to() const {
    return inflight_.empty() ? sensor_.acked : inflight_.back().last_seq;
  }

  void SendHeartbeat() {
    if (closing_ || failed_) return;
    json health = {
        {"instruments", json::array({{{"name", "bench"}, {"state", "running"}, {"restarts", 0}}})},
        {"counters", json::object()},
        {"disk", {{"data_root_free_bytes", 10'000'000'000ULL}}},
        {"load", {0.5, 0.5, 0.5}},
        {"spool", {{"pending", sensor_.next_seq - 1 - sensor_.acked}, {"dropped_full", 0}}},
        {"locked", false}};
    Send(json{{"type", "heartbeat"}, {"health", std::move(health)}}.dump());
    heartbeat_timer_.expires_after(heartbeat_);
    heartbeat_timer_.async_wait([self = shared_from_this()](beast::error_code error) {
      if (!error) self->SendHeartbeat();
    });
  }

  void Send(std::string text) {
    outbox_.push_back(std::move(text));
    if (!writing_) WriteNext();
  }

  void WriteNext() {
    writing_ = true;
    ws_.async_write(asio::buffer(outbox_.front()),
                    [self = shared_from_this()](beast::error_code error, std::size_t) {
                      self->OnWrite(error);
                    });
  }

  void OnWrite(beast::error_code error) {
    writing_ = false;
    outbox_.pop_front();
    if (failed_) return;
    if (error) return Fail("send: " + error.message());
    if (!outbox_.empty()) return WriteNext();
    if (closing_) CloseNow();
  }

  // --- ending --------------------------------------------------------------

  void Close() {
    if (closing_) return;
    closing_ = true;
    tick_timer_.cancel();
    heartbeat_timer_.cancel();
    if (!writing_) CloseNow();
  }

  void CloseNow() {
    ws_.async_close(websocket::close_code::normal, [self = shared_from_this()](beast::error_code) {
      self->deadline_.cancel();
      self->Notify();
    });
  }

  void ArmDeadline(Clock::duration after, std::string why) {
    deadline_.expires_after(after);
    deadline_.async_wait(
        [self = shared_from_this(), why = std::move(why)](beast::error_code error) {
          if (!error) self->Fail(why);
        });
  }

  void Fail(const std::string& why) {
    if (failed_) return;
    failed_ = true;
    error_ = sensor_.id + ": " + why;
    deadline_.cancel();
    tick_timer_.cancel();
    heartbeat_timer_.cancel();
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).socket().close(ignored);
    Notify();
  }

  // Whoever waits: the connect callback first, then the run's.
  void Notify() {
    if (connected_) return std::exchange(connected_, nullptr)();
    if (finished_) std::exchange(finished_, nullptr)();
  }

  Sensor& sensor_;
  const Plan plan_;
  const std::shared_ptr<const BatchWriter> writer_;
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws_;
  asio::steady_timer deadline_, tick_timer_, heartbeat_timer_;
  beast::flat_buffer buffer_;
  std::deque<std::string> outbox_;
  std::deque<Batch> inflight_;
  std::deque<Clock::time_point> made_;  // when each unacknowledged seq was made
  std::vector<std::uint32_t> latencies_us_;
  std::function<void()> connected_, finished_;
  std::chrono::seconds heartbeat_{5};
  Clock::time_point connect_start_, next_tick_, end_, last_ack_;
  Clock::duration connect_time_{};
  std::uint64_t acked_before_ = 0;
  std::uint64_t batches_acked_ = 0;
  std::string error_;
  bool welcomed_ = false, writing_ = false, closing_ = false, failed_ = false;
  bool generating_ = true;
};

struct PhaseResult {
  std::vector<std::uint32_t> latencies_us;
  std::uint64_t acked = 0;
  std::uint64_t batches = 0;
  Clock::duration elapsed{};  // from the start to the last ack
  std::optional<double> fleetd_rss_mb;
};

// What a phase's callbacks share; they may outlive a wait that timed out.
struct PhaseState {
  PhaseState(Engine& engine_in, std::size_t count, std::size_t connecting)
      : engine(engine_in), connected(connecting), finished(count) {}
  Engine& engine;
  std::vector<std::shared_ptr<Channel>> channels;
  std::atomic<std::size_t> next{0};
  Countdown connected, finished;
};

// Connects the next channel, or counts this connecting slot done.
void ConnectNext(const std::shared_ptr<PhaseState>& state) {
  std::size_t index = state->next++;
  if (index >= state->channels.size()) return state->connected.Done();
  asio::post(state->engine.at(index), [state, channel = state->channels[index]] {
    channel->Connect([state] { ConnectNext(state); });
  });
}

// Connects `count` sensors (at most 64 handshakes at once), runs `plan` for
// `duration`, and waits until every event is acknowledged and every
// channel closed. With `measure_rss`, reads fleetd's VmRSS just before the end.
Result<PhaseResult> RunPhase(const std::string& name, Engine& engine,
                             std::vector<std::unique_ptr<Sensor>>& sensors, std::size_t count,
                             const Plan& plan, Clock::duration duration, pid_t fleetd,
                             bool measure_rss = false) {
  constexpr std::size_t kConnecting = 64;
  auto state = std::make_shared<PhaseState>(engine, count, std::min(kConnecting, count));
  auto writer = std::make_shared<const BatchWriter>(plan.event_bytes);
  for (std::size_t i = 0; i < count; ++i) {
    state->channels.push_back(std::make_shared<Channel>(engine.at(i), *sensors[i], plan, writer));
  }
  // Read only once every channel has reported through a Countdown.
  auto first_error = [&]() -> std::optional<Error> {
    std::size_t failed = 0;
    std::string first;
    for (auto& channel : state->channels) {
      if (channel->error().empty()) continue;
      if (failed++ == 0) first = channel->error();
    }
    if (failed == 0) return std::nullopt;
    return Error{name + ": " + std::to_string(failed) + " of " + std::to_string(count) +
                 " channels failed; first: " + first};
  };

  auto connect_start = Clock::now();
  for (std::size_t i = 0; i < std::min(kConnecting, count); ++i) ConnectNext(state);
  if (!state->connected.WaitUntil(Clock::now() + std::chrono::seconds(60))) {
    return Error{interrupted ? "interrupted" : name + ": connecting took more than 60 s"};
  }
  auto connect_wall = Clock::now() - connect_start;
  if (auto error = first_error()) return *error;
  std::vector<double> connect_ms;
  for (auto& channel : state->channels) connect_ms.push_back(Milliseconds(channel->connect_time()));
  spdlog::info("{}: {} sensors connected in {:.1f} s (TCP connect to welcome: median {:.1f} ms)",
               name, count, std::chrono::duration<double>(connect_wall).count(),
               Percentile(connect_ms, 0.5));

  auto start = Clock::now() + std::chrono::milliseconds(200);
  auto end = start + duration;
  double fleetd_cpu = CpuSeconds(fleetd), bench_cpu = CpuSeconds(-1);
  for (std::size_t i = 0; i < count; ++i) {
    asio::post(engine.at(i), [state, start, end, channel = state->channels[i]] {
      channel->Run(start, end, [state] { state->finished.Done(); });
    });
  }
  PhaseResult result;
  if (measure_rss) {
    state->finished.WaitUntil(end - std::chrono::milliseconds(500));
    if (interrupted) return Error{"interrupted"};
    auto rss = ResidentMegabytes(fleetd);
    if (!rss.ok()) return rss.error();
    result.fleetd_rss_mb = *rss;
  }
  if (!state->finished.WaitUntil(end + kDrainTimeout + std::chrono::seconds(5))) {
    return Error{interrupted ? "interrupted" : name + ": the channels did not finish"};
  }
  if (auto error = first_error()) return *error;
  Clock::time_point last = start;
  for (auto& channel : state->channels) {
    result.acked += channel->acked_in_run();
    result.batches += channel->batches_acked();
    last = std::max(last, channel->last_ack());
    auto& latencies = channel->latencies_us();
    result.latencies_us.insert(result.latencies_us.end(), latencies.begin(), latencies.end());
  }
  result.elapsed = last - start;
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  spdlog::info(
      "{}: {} batches acknowledged ({:.0f}/s); CPU in {:.1f} s: fleetd {:.1f} s, "
      "simulator {:.1f} s",
      name, result.batches, static_cast<double>(result.batches) / seconds, seconds,
      CpuSeconds(fleetd) - fleetd_cpu, CpuSeconds(-1) - bench_cpu);
  return result;
}

// --- checking what the fleet stored ----------------------------------------

// Per sensor, the stored rows must be exactly seqs 1..acked: none lost,
// none twice, none the fleet did not acknowledge.
Status CheckStoredRows(const fs::path& database,
                       const std::vector<std::unique_ptr<Sensor>>& sensors,
                       std::uint64_t& stored_total) {
  sqlite3* raw = nullptr;
  int opened = sqlite3_open_v2(database.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close);
  if (opened != SQLITE_OK) return Error{"cannot open " + database.string()};
  sqlite3_busy_timeout(db.get(), 10000);
  sqlite3_stmt* raw_statement = nullptr;
  const char* sql =
      "SELECT sensor_id, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM events "
      "GROUP BY sensor_id";
  if (sqlite3_prepare_v2(db.get(), sql, -1, &raw_statement, nullptr) != SQLITE_OK) {
    return Error{std::string("cannot query the events: ") + sqlite3_errmsg(db.get())};
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> statement(raw_statement, sqlite3_finalize);
  struct Rows {
    std::uint64_t count, distinct, min, max;
  };
  std::map<std::string, Rows> stored;
  int step;
  while ((step = sqlite3_step(statement.get())) == SQLITE_ROW) {
    auto column = [&](int i) {
      return static_cast<std::uint64_t>(sqlite3_column_int64(statement.get(), i));
    };
    stored[reinterpret_cast<const char*>(sqlite3_column_text(statement.get(), 0))] =
        Rows{column(1), column(2), column(3), column(4)};
  }
  if (step != SQLITE_DONE)
    return Error{std::string("reading the events: ") + sqlite3_errmsg(db.get())};
  stored_total = 0;
  std::vector<std::string> wrong;
  for (auto& [id, rows] : stored) stored_total += rows.count;
  for (const auto& sensor : sensors) {
    Rows rows{0, 0, 0, 0};
    if (auto found = stored.find(sensor->id); found != stored.end()) {
      rows = found->second;
      stored.erase(found);
    }
    bool exact = rows.count == sensor->acknowledged() && rows.distinct == rows.count &&
                 (rows.count == 0 || (rows.min == sensor->first_seq && rows.max == sensor->acked));
    if (!exact && wrong.size() < 5) {
      wrong.push_back(sensor->id + ": acknowledged seqs " + std::to_string(sensor->first_seq) +
                      ".." + std::to_string(sensor->acked) + ", stored " +
                      std::to_string(rows.count) + " rows (" + std::to_string(rows.distinct) +
                      " distinct seqs, " + std::to_string(rows.min) + ".." +
                      std::to_string(rows.max) + ")");
    } else if (!exact) {
      wrong.push_back("");
    }
  }
  for (auto& [id, rows] : stored) {
    wrong.push_back(id + ": " + std::to_string(rows.count) +
                    " rows of a sensor the bench did not run");
  }
  if (wrong.empty()) return {};
  std::string text = std::to_string(wrong.size()) + " sensors' stored events differ:";
  for (const auto& line : wrong) {
    if (!line.empty()) text += "\n  " + line;
  }
  return Error{text};
}

// Pages through GET /v1/events?sensor=ID: seqs 1..acked in order, each once,
// and each body the one sent for that seq.
Status CheckEventsApi(Admin& admin, const Sensor& sensor) {
  std::uint64_t expected = sensor.first_seq;
  std::string after;
  for (;;) {
    std::string target = "/v1/events?sensor=" + sensor.id + "&limit=1000" + after;
    auto reply = admin.CallAndWait(http::verb::get, target);
    if (!reply.ok()) return Context("GET " + target, reply.error());
    if (reply->status != 200) return Error{"GET " + target + ": " + ProblemText(*reply)};
    json page = json::parse(reply->body, nullptr, false);
    if (!page.is_object() || !page.contains("events") || !page["events"].is_array()) {
      return Error{"GET " + target + ": no events array"};
    }
    for (const json& event : page["events"]) {
      auto seq = UnsignedField(event, "seq");
      bool body_matches = event.is_object() && event.contains("event") &&
                          UnsignedField(event["event"], "seq") == seq;
      if (seq != expected || !body_matches) {
        return Error{"GET /v1/events for " + sensor.id + ": expected seq " +
                     std::to_string(expected) + ", got " + event.dump().substr(0, 300)};
      }
      ++expected;
    }
    if (!page.contains("next_after") || !page["next_after"].is_number()) break;
    after = "&after=" + std::to_string(page["next_after"].get<std::int64_t>());
  }
  if (expected - 1 != sensor.acked) {
    return Error{"GET /v1/events for " + sensor.id + " lists " +
                 std::to_string(expected - sensor.first_seq) + " events; the fleet acknowledged " +
                 std::to_string(sensor.acknowledged())};
  }
  return {};
}

// --- the run ---------------------------------------------------------------

struct Options {
  Tools tools;
  int threads = 2;
  std::size_t enroll_timed = 100;
  std::size_t enroll_parallel = 8;
  std::size_t small = 100;
  std::size_t large = 1000;
  std::size_t flood = 100;
  double small_seconds = 15;
  double large_seconds = 20;
  double flood_seconds = 10;
  std::size_t rate = 20;  // events per second per sensor
  std::size_t batch_events = 500;
  std::size_t event_bytes = 200;
};

Clock::duration Seconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

void PrintLatency(const char* bench_name, const std::string& label, PhaseResult& phase) {
  double p50 = Percentile(phase.latencies_us, 0.50) / 1000.0;
  double p99 = Percentile(phase.latencies_us, 0.99) / 1000.0;
  double max = phase.latencies_us.empty() ? 0 : phase.latencies_us.back() / 1000.0;
  spdlog::info("{}: {} events acknowledged, latency p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms",
               label, phase.acked, p50, p99, max);
  std::printf("BENCH %s %.1f ms\n", bench_name, p99);
  std::fflush(stdout);
}

int Run(const Options& options) {
  std::size_t most = std::max({options.small, options.large, options.flood});
  if (auto raised = RaiseFileLimit(2 * most + 256); !raised.ok()) {
    spdlog::error("{}", raised.error().message);
    return 1;
  }
  auto fleet = Fleet::Start(options.tools);
  if (!fleet.ok()) {
    spdlog::error("{}", fleet.error().message);
    return 1;
  }
  auto fail = [&](const Error& error) {
    spdlog::error("{}", error.message);
    if (interrupted) return 1;
    std::string tail = (*fleet)->LogTail();
    if (!tail.empty()) spdlog::error("end of the fleetd log:\n{}", tail);
    return 1;
  };
  auto admin_tls = MakeAdminContext((*fleet)->root_pem());
  if (!admin_tls.ok()) return fail(admin_tls.error());
  auto enroll_tls = MakeEnrollContext();
  if (!enroll_tls.ok()) return fail(enroll_tls.error());
  // Declared before the engine and stopped with it (the guard below), so no
  // handler can still run when the sensors and contexts go away.
  EnrollmentRun enrollment;
  Engine engine(options.threads);
  Admin admin(engine, **fleet, *admin_tls);
  struct StopFirst {
    Engine& engine;
    ~StopFirst() { engine.Stop(); }
  } stop_first{engine};

  auto enrolled = EnrollSensors(engine, admin, **fleet, *enroll_tls, most, options.enroll_timed,
                                options.enroll_parallel);
  if (!enrolled.ok()) return fail(enrolled.error());
  enrollment = std::move(*enrolled);
  auto& sensors = enrollment.sensors;
  spdlog::info(
      "enrollment: {} sensors; one at a time: median {:.1f} ms, p99 {:.1f} ms; {} at once: "
      "median {:.1f} ms",
      sensors.size(), Percentile(enrollment.sequential_ms, 0.5),
      Percentile(enrollment.sequential_ms, 0.99), options.enroll_parallel,
      Percentile(enrollment.parallel_ms, 0.5));
  std::printf("BENCH fleet_enroll_ms %.1f ms\n", Percentile(enrollment.sequential_ms, 0.5));
  std::fflush(stdout);

  Plan rate;
  rate.load = Load::kRate;
  rate.tick = std::chrono::milliseconds(100);
  rate.events_per_tick = std::max<std::size_t>(1, options.rate / 10);
  rate.batch_events = options.batch_events;
  rate.event_bytes = options.event_bytes;

  auto small = RunPhase(std::to_string(options.small) + " sensors", engine, sensors, options.small,
                        rate, Seconds(options.small_seconds), (*fleet)->pid());
  if (!small.ok()) return fail(small.error());
  PrintLatency("fleet_p99_ms_100sensors", std::to_string(options.small) + " sensors", *small);

  auto large = RunPhase(std::to_string(options.large) + " sensors", engine, sensors, options.large,
                        rate, Seconds(options.large_seconds), (*fleet)->pid(), true);
  if (!large.ok()) return fail(large.error());
  PrintLatency("fleet_p99_ms_1000sensors", std::to_string(options.large) + " sensors", *large);
  std::printf("BENCH fleetd_rss_mb_1000sensors %.1f MB\n", large->fleetd_rss_mb.value_or(0));
  std::fflush(stdout);

  Plan flood = rate;
  flood.load = Load::kFlood;
  flood.record_latency = false;
  auto throughput = RunPhase("throughput", engine, sensors, options.flood, flood,
                             Seconds(options.flood_seconds), (*fleet)->pid());
  if (!throughput.ok()) return fail(throughput.error());
  double seconds = std::chrono::duration<double>(throughput->elapsed).count();
  double per_second = seconds > 0 ? static_cast<double>(throughput->acked) / seconds : 0;
  spdlog::info("throughput: {} sensors stored {} events in {:.2f} s ({} per batch, {} bytes each)",
               options.flood, throughput->acked, seconds, options.batch_events,
               options.event_bytes);
  std::printf("BENCH fleet_events_per_s %.0f events/s\n", per_second);
  std::fflush(stdout);

  std::uint64_t acked = 0;
  for (const auto& sensor : sensors) acked += sensor->acknowledged();
  std::uint64_t stored = 0;
  if (auto rows = CheckStoredRows((*fleet)->dir() / "fleet.db", sensors, stored); !rows.ok()) {
    return fail(Error{"FAILED: the fleet acknowledged " + std::to_string(acked) +
                      " events but stored " + std::to_string(stored) + ": " +
                      rows.error().message});
  }
  if (auto listed = CheckEventsApi(admin, *sensors.front()); !listed.ok()) {
    return fail(Context("FAILED", listed.error()));
  }
  spdlog::info(
      "checked: the fleet stored exactly the {} events it acknowledged ({} rows), "
      "and lists sensor {}'s {} events in order",
      acked, stored, sensors.front()->id, sensors.front()->acknowledged());
  if (auto stopped = (*fleet)->Stop(); !stopped.ok()) return fail(stopped.error());
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"custos_fleet_bench: simulated sensors against a real custos-fleetd"};
  Options options;
  app.add_option("--cli", options.tools.cli, "the custos binary")->capture_default_str();
  app.add_option("--fleetd", options.tools.fleetd, "the custos-fleetd binary")
      ->capture_default_str();
  app.add_option("--threads", options.threads, "network threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  app.add_option("--enroll-timed", options.enroll_timed, "enrollments timed one at a time")
      ->capture_default_str();
  app.add_option("--small", options.small, "sensors in the first latency run")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--large", options.large, "sensors in the second latency run")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--flood", options.flood, "sensors in the throughput run")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--small-seconds", options.small_seconds)->capture_default_str();
  app.add_option("--large-seconds", options.large_seconds)->capture_default_str();
  app.add_option("--flood-seconds", options.flood_seconds)->capture_default_str();
  app.add_option("--rate", options.rate, "events per second per sensor (multiple of 10)")
      ->capture_default_str()
      ->check(CLI::Range(10, 5000));
  app.add_option("--batch-events", options.batch_events, "events per batch in the throughput run")
      ->capture_default_str()
      ->check(CLI::Range(1, 500));
  app.add_option("--event-bytes", options.event_bytes, "bytes per event body")
      ->capture_default_str()
      ->check(CLI::Range(120, 2000));
  CLI11_PARSE(app, argc, argv);
  InitLogging("fleet_bench", false);

  struct sigaction action {};
  action.sa_handler = OnSignal;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return Run(options);
}

}  // namespace
}  // namespace custos::fleetbench

int main(int argc, char** argv) { return custos::fleetbench::Main(argc, argv); }
