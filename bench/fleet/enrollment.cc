// Enrollment as a sensor does it (key pair, CSR, token, the fleet checked
// by the token's CA hash), one at a time and then several at once.
#include "bench/fleet/enrollment.h"

#include <atomic>
#include <charconv>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "crypto/certificate.h"
#include "crypto/csr.h"
#include "crypto/key.h"
#include "crypto/openssl_util.h"
#include "crypto/tls.h"

namespace custos::fleetbench {
namespace {

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
    auto hash = crypto::CertificateSha256Hex(root->get());
    if (!hash) return Finish(Context("enrollment root", hash.error()));
    if (*hash != ca_hash_) {
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

}  // namespace

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

}  // namespace custos::fleetbench
