// The REST API of a running fleetd over real HTTPS.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "fleet/api_tls.h"
#include "fleet/fleet_test_support.h"

namespace custos::fleet {
namespace {

using nlohmann::json;
using testing::ChannelClient;
using testing::EventsBatch;
using testing::Must;
using testing::Reply;
using testing::SensorIdentity;
using testing::TestFleet;

void ExpectProblem(const Reply& reply, int status, const std::string& detail_part = "") {
  EXPECT_EQ(reply.status, status) << reply.text;
  EXPECT_EQ(reply.content_type, "application/problem+json") << reply.text;
  EXPECT_EQ(reply.body.value("status", 0), status) << reply.text;
  EXPECT_NE(reply.body.value("detail", "").find(detail_part), std::string::npos) << reply.text;
}

// Everything an API request could change, to show a refused one changed nothing.
struct Snapshot {
  std::vector<std::string> sensors;
  std::size_t tokens = 0;
  std::int64_t state_version = 0;
  std::size_t revoked = 0;
  bool operator==(const Snapshot&) const = default;
};

Snapshot Take(TestFleet& fleet, const std::string& sensor_id) {
  Snapshot snapshot;
  for (const auto& sensor : Must(fleet.store().ListSensors(""))) {
    snapshot.sensors.push_back(sensor.id + (sensor.revoked_at ? " revoked" : ""));
  }
  snapshot.tokens = Must(fleet.store().ListEnrollmentTokens()).size();
  snapshot.state_version = Must(fleet.store().GetDesiredState(sensor_id)).version;
  snapshot.revoked = Must(fleet.store().RevokedSerials()).size();
  return snapshot;
}

struct Endpoint {
  std::string method;
  std::string target;
  std::string body;
};

std::vector<Endpoint> AllEndpoints(const std::string& id) {
  return {{"GET", "/v1/sensors", ""},
          {"GET", "/v1/sensors/" + id, ""},
          {"GET", "/v1/sensors/" + id + "/desired-state", ""},
          {"PUT", "/v1/sensors/" + id + "/desired-state", R"({"config": "policy: {}\n"})"},
          {"POST", "/v1/sensors/" + id + "/revoke", ""},
          {"GET", "/v1/events", ""},
          {"GET", "/v1/tokens", ""},
          {"POST", "/v1/tokens", R"({"tenant": "acme"})"},
          {"GET", "/v1/no-such-thing", ""}};
}

TEST(ApiTest, EveryEndpointRefusesAMissingOrWrongToken) {
  TestFleet fleet;
  SensorIdentity sensor = fleet.Enroll();
  Snapshot before = Take(fleet, sensor.sensor_id);
  std::string wrong = fleet.admin_token();
  wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
  for (const Endpoint& endpoint : AllEndpoints(sensor.sensor_id)) {
    SCOPED_TRACE(endpoint.method + " " + endpoint.target);
    ExpectProblem(fleet.Call(endpoint.method, endpoint.target, endpoint.body, ""), 401);
    ExpectProblem(fleet.Call(endpoint.method, endpoint.target, endpoint.body, wrong), 401);
    ExpectProblem(
        fleet.Call(endpoint.method, endpoint.target, endpoint.body, fleet.admin_token() + "x"),
        401);
  }
  EXPECT_EQ(Take(fleet, sensor.sensor_id), before);
  // The same requests with the token work (the last is a 404).
  for (const Endpoint& endpoint : AllEndpoints(sensor.sensor_id)) {
    SCOPED_TRACE(endpoint.method + " " + endpoint.target);
    int status = fleet.Call(endpoint.method, endpoint.target, endpoint.body).status;
    EXPECT_TRUE(status == 200 || status == 201 || endpoint.target == "/v1/no-such-thing") << status;
  }
}

TEST(ApiTest, BadRequestsAre400ProblemsAndChangeNothing) {
  TestFleet fleet;
  SensorIdentity sensor = fleet.Enroll();
  std::string state = "/v1/sensors/" + sensor.sensor_id + "/desired-state";
  Snapshot before = Take(fleet, sensor.sensor_id);
  struct Case {
    std::string method, target, body;
    int status;
    std::string detail;
  };
  std::vector<Case> cases = {
      {"POST", "/v1/tokens", "{", 400, "JSON"},
      {"POST", "/v1/tokens", "", 400, "empty"},
      {"POST", "/v1/tokens", R"({"tenant": "acme", "colour": "red"})", 400, "colour"},
      {"POST", "/v1/tokens", R"({"tenant": "-bad"})", 400, "tenant"},
      {"POST", "/v1/tokens", R"({"tenant": "acme", "ttl_seconds": 5})", 400, "ttl_seconds"},
      {"POST", "/v1/tokens", R"({"tenant": "acme", "ttl_seconds": "60"})", 400, "ttl_seconds"},
      {"POST", "/v1/tokens", R"({"ttl_seconds": 600})", 400, "tenant"},
      {"POST", "/v1/tokens", std::string(70, '[') + std::string(70, ']'), 400, "JSON"},
      {"PUT", state, R"({"config": "policy: [unclosed"})", 400, "YAML"},
      {"PUT", state, R"({"config": "other: 1"})", 400, "other"},
      {"PUT", state, R"({"config": 5})", 400, "config"},
      {"PUT", state, R"({"config": "policy: {}", "force": true})", 400, "force"},
      {"PUT", "/v1/sensors/nobody/desired-state", R"({"config": "policy: {}"})", 404, "nobody"},
      {"POST", "/v1/sensors/" + sensor.sensor_id + "/revoke", R"({"why": "x"})", 400, "why"},
      {"POST", "/v1/sensors/nobody/revoke", "", 404, "nobody"},
      {"POST", "/v1/sensors/bad%20id/revoke", "", 400, "sensor id"},
      {"GET", "/v1/events?limit=0", "", 400, "limit"},
      {"GET", "/v1/events?limit=abc", "", 400, "limit"},
      {"GET", "/v1/events?limit=1001", "", 400, "limit"},
      {"GET", "/v1/events?since=yesterday", "", 400, "since"},
      {"GET", "/v1/events?color=red", "", 400, "color"},
      {"GET", "/v1/events?type=dns&type=flow", "", 400, "twice"},
      {"GET", "/v1/events?after=-1", "", 400, "after"},
      {"GET", "/v1/events?sensor=..", "", 400, "sensor"},
      {"GET", "/v1/events?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "", 400, "until"},
      {"GET", "/v1/events?q=%zz", "", 400, "percent"},
      {"GET", "/v1/sensors?tenant=a&x=1", "", 400, "x"},
      {"GET", "/v1/tokens?all=1", "", 400, "all"},
      {"DELETE", "/v1/tokens", "", 405, "DELETE"},
      {"GET", "/v1/sensors", "{}", 400, "body"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method + " " + c.target + " " + c.body.substr(0, 80));
    ExpectProblem(fleet.Call(c.method, c.target, c.body), c.status, c.detail);
  }
  ExpectProblem(fleet.Call("POST", "/v1/tokens", R"({"tenant": "acme"})", std::nullopt,
                           "application/x-www-form-urlencoded"),
                415);
  EXPECT_EQ(Take(fleet, sensor.sensor_id), before);
}

TEST(ApiTest, BodiesOverOneMebibyteAre413) {
  TestFleet fleet;
  SensorIdentity sensor = fleet.Enroll();
  Snapshot before = Take(fleet, sensor.sensor_id);
  std::string huge = json{{"config", "policy: {}\n#" + std::string(1100 * 1024, 'x')}}.dump();
  HttpsClientOptions options{HostPort{"127.0.0.1", fleet.api_port()}, fleet.root_pem(),
                             fleet.admin_token()};
  auto reply =
      HttpsCall(options, "PUT", "/v1/sensors/" + sensor.sensor_id + "/desired-state", huge);
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply->status, 413) << reply->body;
  EXPECT_EQ(reply->content_type, "application/problem+json");
  EXPECT_EQ(Take(fleet, sensor.sensor_id), before);
}

TEST(ApiTest, TheApiPortNeedsNoClientCertificateButOnlyTls13) {
  TestFleet fleet;
  // A TLS 1.2-only client is refused at the handshake.
  boost::asio::io_context io;
  boost::asio::ssl::context context(boost::asio::ssl::context::tls_client);
  SSL_CTX_set_max_proto_version(context.native_handle(), TLS1_2_VERSION);
  boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream(io, context);
  stream.next_layer().connect({boost::asio::ip::make_address("127.0.0.1"), fleet.api_port()});
  boost::system::error_code error;
  stream.handshake(boost::asio::ssl::stream_base::client, error);
  EXPECT_TRUE(error);
}

TEST(ApiTest, TokensAreListedWithoutSecrets) {
  TestFleet fleet;
  Reply created = fleet.Call("POST", "/v1/tokens", R"({"tenant": "acme", "ttl_seconds": 600})");
  ASSERT_EQ(created.status, 201) << created.text;
  std::string token = created.body["token"];
  std::string secret = token.substr(0, token.find('.'));
  EXPECT_EQ(secret.size(), 43u);
  Reply listed = fleet.Call("GET", "/v1/tokens");
  ASSERT_EQ(listed.status, 200);
  ASSERT_EQ(listed.body["tokens"].size(), 1u);
  EXPECT_EQ(listed.body["tokens"][0]["tenant"], "acme");
  EXPECT_EQ(listed.body["tokens"][0]["state"], "unused");
  EXPECT_EQ(listed.body["tokens"][0]["id"], created.body["id"]);
  EXPECT_EQ(listed.text.find(secret), std::string::npos);
  EXPECT_EQ(listed.text.find(Sha256Hex(secret)), std::string::npos);

  crypto::KeyPair key = Must(crypto::KeyPair::Generate());
  ASSERT_EQ(fleet.Call("POST", "/v1/enroll", testing::EnrollBody(token, key), "").status, 200);
  listed = fleet.Call("GET", "/v1/tokens");
  EXPECT_EQ(listed.body["tokens"][0]["state"], "used");
  EXPECT_TRUE(listed.body["tokens"][0]["used_by"].is_string());
}

TEST(ApiTest, SensorsAndEventsWithFiltersAndPaging) {
  TestFleet fleet;
  SensorIdentity one = fleet.Enroll("acme", "one");
  SensorIdentity two = fleet.Enroll("globex", "two");
  {
    ChannelClient client(fleet.channel_port(), one);
    Must(client.Connect());
    Must(client.Hello());
    Must(client.Send(EventsBatch(1, 1, 30, "dns")));
    Must(client.ReceiveType("ack"));
    Must(client.Send(EventsBatch(2, 31, 40, "alert")));
    Must(client.ReceiveType("ack"));
  }
  {
    ChannelClient client(fleet.channel_port(), two);
    Must(client.Connect());
    Must(client.Hello());
    Must(client.Send(EventsBatch(1, 1, 5, "flow")));
    Must(client.ReceiveType("ack"));
  }
  Reply sensors = fleet.Call("GET", "/v1/sensors");
  ASSERT_EQ(sensors.status, 200);
  EXPECT_EQ(sensors.body["sensors"].size(), 2u);
  Reply acme = fleet.Call("GET", "/v1/sensors?tenant=acme");
  ASSERT_EQ(acme.body["sensors"].size(), 1u);
  EXPECT_EQ(acme.body["sensors"][0]["id"], one.sensor_id);
  EXPECT_EQ(acme.body["sensors"][0]["name"], "one");
  EXPECT_EQ(acme.body["sensors"][0]["revoked"], false);

  EXPECT_EQ(fleet.Call("GET", "/v1/events?limit=1000").body["events"].size(), 45u);
  EXPECT_EQ(fleet.Call("GET", "/v1/events?type=alert").body["events"].size(), 10u);
  EXPECT_EQ(fleet.Call("GET", "/v1/events?sensor=" + two.sensor_id).body["events"].size(), 5u);
  EXPECT_EQ(fleet.Call("GET", "/v1/events?tenant=globex&type=flow").body["events"].size(), 5u);
  EXPECT_EQ(fleet.Call("GET", "/v1/events?q=%22n%22%3A33%2C").body["events"].size(), 1u);
  EXPECT_EQ(fleet.Call("GET", "/v1/events?since=2026-11-23T10:00:01Z").body["events"].size(), 0u);
  EXPECT_EQ(fleet.Call("GET", "/v1/events?until=2026-11-23T10:00:01Z").body["events"].size(), 45u);

  // Paging: 45 events in pages of 20, in order, each once.
  std::vector<std::int64_t> ids;
  std::string target = "/v1/events?limit=20";
  for (int page = 0; page < 5; ++page) {
    Reply reply = fleet.Call("GET", target);
    ASSERT_EQ(reply.status, 200) << reply.text;
    for (const auto& event : reply.body["events"]) {
      ids.push_back(event["id"]);
      EXPECT_TRUE(event["event"].is_object());
    }
    if (reply.body["next_after"].is_null()) break;
    target = "/v1/events?limit=20&after=" + std::to_string(reply.body["next_after"].get<long>());
  }
  ASSERT_EQ(ids.size(), 45u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  Reply newest = fleet.Call("GET", "/v1/events?order=desc&limit=1");
  EXPECT_EQ(newest.body["events"][0]["id"], ids.back());
}

}  // namespace
}  // namespace custos::fleet
