#include "sensor/data_key_client.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include "crypto/tls.h"

namespace custos::sensor {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct Reply {
  int status = 0;
  std::string body;
  ~Reply() { OPENSSL_cleanse(body.data(), body.size()); }
};

Status Call(const FleetIdentity& identity, http::verb method, const std::string& target,
            const std::string& body, std::chrono::seconds timeout, Reply& reply) {
  crypto::ClientTlsOptions options{identity.root_pem, identity.certificate_pem, identity.chain_pem,
                                   identity.channel.host};
  auto context = crypto::MakeClientContext(options, *identity.key);
  if (!context) return Context("data key TLS", context.error());
  std::string where = "the fleet at " + identity.channel.ToString();
  try {
    asio::io_context io;
    beast::ssl_stream<beast::tcp_stream> stream(io, *context);
    CUSTOS_TRY(crypto::SetServerName(stream.native_handle(), identity.channel.host));
    asio::ip::tcp::resolver resolver(io);
    auto endpoints = resolver.resolve(identity.channel.host, std::to_string(identity.channel.port));
    beast::get_lowest_layer(stream).expires_after(timeout);
    beast::get_lowest_layer(stream).connect(endpoints);
    stream.handshake(asio::ssl::stream_base::client);
    http::request<http::string_body> request{method, target, 11};
    request.set(http::field::host, identity.channel.ToString());
    request.set(http::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    reply.status = static_cast<int>(response.result_int());
    reply.body = std::move(response.body());
    OPENSSL_cleanse(buffer.data().data(), buffer.size());
    beast::error_code ignored;
    stream.shutdown(ignored);
  } catch (const std::exception& error) {
    return Error{"cannot reach " + where + ": " + error.what()};
  }
  if (reply.status != 200) {
    auto problem = nlohmann::json::parse(reply.body, nullptr, false);
    std::string detail = problem.is_object() ? problem.value("detail", reply.body) : reply.body;
    return Error{where + " refused (" + std::to_string(reply.status) + "): " + detail};
  }
  return {};
}

// Base64 text to locked memory, never through an ordinary buffer.
Result<storage::SecretBytes> DecodeKey(const nlohmann::json& text) {
  if (!text.is_string()) return Error{"the fleet's reply has no key"};
  const auto& base64 = text.get_ref<const std::string&>();
  auto key = storage::SecretBytes::Allocate(base64.size());
  if (!key) return key.error();
  int length = EVP_DecodeBlock(key->data(), reinterpret_cast<const unsigned char*>(base64.data()),
                               static_cast<int>(base64.size()));
  // EVP_DecodeBlock counts padding as zero bytes.
  if (length >= 0 && !base64.empty() && base64.back() == '=') --length;
  if (length >= 0 && base64.size() >= 2 && base64[base64.size() - 2] == '=') --length;
  if (length != static_cast<int>(storage::kDataKeySize))
    return Error{"the fleet's data key is not " + std::to_string(storage::kDataKeySize) + " bytes"};
  return storage::SecretBytes::Copy(key->bytes().first(storage::kDataKeySize));
}

}  // namespace

Result<DataKeys> FetchDataKeys(const FleetIdentity& identity, std::chrono::seconds timeout) {
  Reply reply;
  CUSTOS_TRY(Call(identity, http::verb::get, "/v1/data-key", "", timeout, reply));
  auto document = nlohmann::json::parse(reply.body, nullptr, false);
  if (!document.is_object()) return Error{"the fleet's data key reply is not JSON"};
  auto current = DecodeKey(document.value("key", nlohmann::json()));
  if (!current) return current.error();
  DataKeys keys{std::move(*current), document.value("version", std::uint64_t{0}), std::nullopt, 0};
  if (document.contains("pending") && document["pending"].is_object()) {
    auto pending = DecodeKey(document["pending"].value("key", nlohmann::json()));
    if (!pending) return pending.error();
    keys.pending.emplace(std::move(*pending));
    keys.pending_version = document["pending"].value("version", std::uint64_t{0});
  }
  // The parsed document held the key as text too.
  for (auto* field : {&document["key"], &document["pending"]}) {
    if (field->is_string())
      OPENSSL_cleanse(field->get_ref<std::string&>().data(), field->get_ref<std::string&>().size());
  }
  if (document["pending"].is_object() && document["pending"]["key"].is_string()) {
    auto& text = document["pending"]["key"].get_ref<std::string&>();
    OPENSSL_cleanse(text.data(), text.size());
  }
  return keys;
}

Status ConfirmDataKey(const FleetIdentity& identity, std::uint64_t version,
                      std::chrono::seconds timeout) {
  Reply reply;
  return Call(identity, http::verb::post, "/v1/data-key/confirm?version=" + std::to_string(version),
              "", timeout, reply);
}

}  // namespace custos::sensor
