// Admin API calls: any request with the admin token, and token creation.
#include "bench/fleet/admin.h"

#include <future>
#include <memory>
#include <utility>

namespace custos::fleetbench {
namespace {

constexpr char kTenant[] = "bench";

}  // namespace

void Admin::Call(std::size_t thread, http::verb method, const std::string& target,
                 const std::string& body, HttpsExchange::Done done) {
  auto exchange = std::make_shared<HttpsExchange>(engine_.at(thread), tls_);
  exchange->Run(fleet_.api(),
                MakeRequest(method, target, fleet_.api_host(), fleet_.admin_token(), body), nullptr,
                std::move(done));
}

Result<HttpReply> Admin::CallAndWait(http::verb method, const std::string& target) {
  std::promise<Result<HttpReply>> promise;
  auto future = promise.get_future();
  Call(0, method, target, "",
       [&promise](Result<HttpReply> reply) { promise.set_value(std::move(reply)); });
  return future.get();
}

void Admin::CreateToken(std::size_t thread, std::function<void(Result<std::string>)> done) {
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

}  // namespace custos::fleetbench
