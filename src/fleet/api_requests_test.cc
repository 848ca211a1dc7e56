#include "fleet/api_requests.h"

#include <gtest/gtest.h>

namespace custos::fleet {
namespace {

using Query = std::vector<std::pair<std::string, std::string>>;

TEST(ApiRequestsTest, ParsesTargets) {
  auto target = ParseTarget("/v1/sensors/s-1/?a=1&b=x+y%2Fz&&c");
  ASSERT_TRUE(target.ok()) << target.problem().detail;
  EXPECT_EQ(target->path, (std::vector<std::string>{"v1", "sensors", "s-1"}));
  EXPECT_EQ(target->query, (Query{{"a", "1"}, {"b", "x y/z"}, {"c", ""}}));
  EXPECT_FALSE(ParseTarget("v1/sensors").ok());
  EXPECT_FALSE(ParseTarget("http://x/v1").ok());
  EXPECT_FALSE(ParseTarget("/v1//sensors").ok());
  EXPECT_FALSE(ParseTarget("/v1/%zz").ok());
  EXPECT_FALSE(ParseTarget("/v1/a%0Ab").ok());
  EXPECT_FALSE(ParseTarget("/v1?q=%0").ok());
  EXPECT_FALSE(ParseTarget("/" + std::string(5000, 'a')).ok());
}

TEST(ApiRequestsTest, IdentifiersMatchWhatTheCaSigns) {
  EXPECT_TRUE(IsValidIdentifier("sensor-0a1b"));
  EXPECT_TRUE(IsValidIdentifier("acme.corp_1"));
  EXPECT_FALSE(IsValidIdentifier(""));
  EXPECT_FALSE(IsValidIdentifier("-x"));
  EXPECT_FALSE(IsValidIdentifier(".x"));
  EXPECT_FALSE(IsValidIdentifier("a b"));
  EXPECT_FALSE(IsValidIdentifier(std::string(65, 'a')));
}

TEST(ApiRequestsTest, TokenRequests) {
  auto request = ParseTokenRequest(R"({"tenant":"acme","ttl_seconds":600})");
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(request->tenant, "acme");
  EXPECT_EQ(request->ttl, std::chrono::seconds(600));
  EXPECT_EQ(ParseTokenRequest(R"({"tenant":"acme"})")->ttl, kDefaultTokenTtl);
  for (const char* bad :
       {"", "{", "[]", R"({"tenant":1})", R"({"tenant":"acme","x":1})",
        R"({"tenant":"acme","ttl_seconds":59})", R"({"tenant":"acme","ttl_seconds":2592001})",
        R"({"tenant":"acme","ttl_seconds":1e3})"}) {
    auto refused = ParseTokenRequest(bad);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.problem().status, 400);
  }
}

TEST(ApiRequestsTest, DesiredStateMustBeYamlWithPolicyAndInstrumentsOnly) {
  EXPECT_TRUE(ParseDesiredStateRequest(R"({"config":"policy: {}\ninstruments: []\n"})").ok());
  auto unknown = ParseDesiredStateRequest(R"({"config":"sensor: {}"})");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.problem().detail.find("sensor"), std::string::npos);
  EXPECT_FALSE(ParseDesiredStateRequest(R"({"config":"[1, 2"})").ok());
  EXPECT_FALSE(ParseDesiredStateRequest(R"({"config":"just text"})").ok());
  EXPECT_FALSE(ParseDesiredStateRequest(R"({"config":""})").ok());
}

TEST(ApiRequestsTest, EventQueries) {
  auto query = ParseEventQuery({{"since", "2026-01-01T00:00:00Z"},
                                {"until", "2026-01-02T00:00:00.5+01:00"},
                                {"sensor", "s1"},
                                {"tenant", "acme"},
                                {"type", "dns"},
                                {"q", "example.com"},
                                {"limit", "50"},
                                {"after", "120"},
                                {"order", "desc"}});
  ASSERT_TRUE(query.ok()) << query.problem().detail;
  EXPECT_EQ(query->sensor_id, "s1");
  EXPECT_EQ(query->tenant, "acme");
  EXPECT_EQ(query->event_type, "dns");
  EXPECT_EQ(query->text, "example.com");
  EXPECT_EQ(query->limit, 50u);
  EXPECT_EQ(query->after_id, 120);
  EXPECT_TRUE(query->newest_first);
  EXPECT_EQ(*query->until - *query->from, std::chrono::hours(23) + std::chrono::milliseconds(500));
  for (const Query& bad : std::vector<Query>{{{"limit", "0"}},
                                             {{"limit", "1001"}},
                                             {{"limit", "99999999999999999999999"}},
                                             {{"after", "0"}},
                                             {{"after", "1x"}},
                                             {{"order", "up"}},
                                             {{"since", "2026-13-01T00:00:00Z"}},
                                             {{"q", ""}},
                                             {{"q", std::string(257, 'a')}},
                                             {{"type", std::string(65, 't')}},
                                             {{"sensor", "a b"}},
                                             {{"limit", "5"}, {"limit", "6"}},
                                             {{"bogus", "1"}}}) {
    auto refused = ParseEventQuery(bad);
    EXPECT_FALSE(refused.ok()) << bad.front().first << "=" << bad.front().second;
  }
}

}  // namespace
}  // namespace custos::fleet
