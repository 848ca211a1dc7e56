#include "sensor/fleet_identity.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <charconv>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/unique_fd.h"
#include "crypto/certificate.h"
#include "crypto/key_file.h"
#include "crypto/verify.h"

namespace custos::sensor {
namespace fs = std::filesystem;

namespace {

Result<std::string> JsonString(const nlohmann::json& object, const char* key,
                               const std::string& file) {
  auto found = object.find(key);
  if (found == object.end() || !found->is_string() || found->get<std::string>().empty()) {
    return Error{file + ": \"" + key + "\" is missing or not a string"};
  }
  return found->get<std::string>();
}

// The certificate must chain to the root for client authentication.
Status VerifyOwnCertificate(const FleetIdentity& identity) {
  auto certificate = crypto::ParseCertificatePem(identity.certificate_pem);
  if (!certificate) return certificate.error();
  auto root = crypto::ParseCertificatePem(identity.root_pem);
  if (!root) return root.error();
  auto chain = crypto::ParseCertificateChainPem(identity.chain_pem);
  if (!chain) return chain.error();
  if (!identity.key->SamePublicKey(X509_get0_pubkey(certificate->get()))) {
    return Error{"the certificate does not hold this sensor's public key"};
  }
  crypto::X509StorePtr store(X509_STORE_new());
  crypto::CertificateStackPtr untrusted(sk_X509_new_null());
  crypto::X509StoreContextPtr context(X509_STORE_CTX_new());
  if (!store || !untrusted || !context || X509_STORE_add_cert(store.get(), root->get()) != 1) {
    return crypto::OpenSslError("cannot set up certificate verification");
  }
  for (const auto& certificate_in_chain : *chain) {
    if (!sk_X509_push(untrusted.get(), certificate_in_chain.get())) {
      return crypto::OpenSslError("cannot set up certificate verification");
    }
  }
  if (X509_STORE_CTX_init(context.get(), store.get(), certificate->get(), untrusted.get()) != 1 ||
      X509_STORE_CTX_set_purpose(context.get(), X509_PURPOSE_SSL_CLIENT) != 1) {
    return crypto::OpenSslError("cannot set up certificate verification");
  }
  if (X509_verify_cert(context.get()) != 1) {
    return Error{"the certificate does not verify against the fleet root: " +
                 crypto::VerifyFailureReason(context.get())};
  }
  return {};
}

}  // namespace

IdentityPaths::IdentityPaths(const fs::path& directory)
    : dir(directory),
      key(directory / "sensor.key"),
      csr(directory / "sensor.csr"),
      certificate(directory / "sensor.crt"),
      chain(directory / "chain.pem"),
      root(directory / "root.pem"),
      fleet(directory / "fleet.json"),
      desired_state(directory / "desired_state.json") {}

std::string FleetEndpoint::ToString() const {
  std::string text = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  text += ':';
  text += std::to_string(port);
  return text;
}

Result<FleetEndpoint> ParseFleetEndpoint(std::string_view text) {
  auto invalid = [&](const std::string& why) {
    return Error{"'" + std::string(text) + "' is not HOST:PORT: " + why};
  };
  FleetEndpoint endpoint;
  std::string_view port;
  if (text.starts_with('[')) {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return invalid("an IPv6 address goes in brackets, as [::1]:8443");
    }
    endpoint.host = std::string(text.substr(1, close - 1));
    unsigned char buffer[sizeof(in6_addr)];
    if (::inet_pton(AF_INET6, endpoint.host.c_str(), buffer) != 1) {
      return invalid("not an IPv6 address in the brackets");
    }
    port = text.substr(close + 2);
  } else {
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return invalid("the port is missing");
    endpoint.host = std::string(text.substr(0, colon));
    if (endpoint.host.find(':') != std::string::npos) {
      return invalid("an IPv6 address goes in brackets, as [::1]:8443");
    }
    port = text.substr(colon + 1);
  }
  if (endpoint.host.empty()) return invalid("the host is missing");
  unsigned value = 0;
  auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535) {
    return invalid("the port must be 1 to 65535");
  }
  endpoint.port = static_cast<std::uint16_t>(value);
  return endpoint;
}

bool IsEnrolled(const fs::path& dir) {
  std::error_code ignored;
  return fs::exists(IdentityPaths(dir).fleet, ignored);
}

Result<FleetIdentity> LoadFleetIdentity(const fs::path& dir) {
  IdentityPaths paths(dir);
  std::string where = "fleet identity " + dir.string();
  FleetIdentity identity;
  auto fleet_text = ReadFile(paths.fleet);
  if (!fleet_text) {
    return Error{where + ": not enrolled (" + fleet_text.error().message +
                 "); run custos sensor enroll"};
  }
  auto fleet = nlohmann::json::parse(*fleet_text, nullptr, false);
  if (!fleet.is_object()) return Error{paths.fleet.string() + ": not a JSON object"};
  std::string file = paths.fleet.string();
  auto sensor_id = JsonString(fleet, "sensor_id", file);
  if (!sensor_id) return sensor_id.error();
  auto tenant = JsonString(fleet, "tenant", file);
  if (!tenant) return tenant.error();
  auto api = JsonString(fleet, "api", file);
  if (!api) return api.error();
  auto channel = JsonString(fleet, "channel", file);
  if (!channel) return channel.error();
  identity.sensor_id = *sensor_id;
  identity.tenant = *tenant;
  auto api_endpoint = ParseFleetEndpoint(*api);
  if (!api_endpoint) return Context(file + ": api", api_endpoint.error());
  auto channel_endpoint = ParseFleetEndpoint(*channel);
  if (!channel_endpoint) return Context(file + ": channel", channel_endpoint.error());
  identity.api = *api_endpoint;
  identity.channel = *channel_endpoint;

  for (auto [path, target] :
       {std::pair{&paths.certificate, &identity.certificate_pem},
        std::pair{&paths.chain, &identity.chain_pem}, std::pair{&paths.root, &identity.root_pem}}) {
    auto text = ReadFile(*path);
    if (!text) return Context(where, text.error());
    *target = std::move(*text);
  }
  auto key = crypto::ReadPrivateKeyFile(paths.key);
  if (!key) return Context(where, key.error());
  identity.key = std::make_shared<const crypto::KeyPair>(std::move(*key));
  if (auto checked = CheckFleetIdentity(identity); !checked) {
    return Context(paths.certificate.string(), checked.error());
  }
  return identity;
}

Status CheckFleetIdentity(const FleetIdentity& identity) {
  if (!identity.key) return Error{"no private key"};
  CUSTOS_TRY(VerifyOwnCertificate(identity));
  auto certificate = crypto::ParseCertificatePem(identity.certificate_pem);
  if (!certificate) return certificate.error();
  auto subject = crypto::SensorIdentityOf(certificate->get());
  if (!subject) return subject.error();
  if (subject->sensor_id != identity.sensor_id) {
    return Error{"the certificate names sensor '" + subject->sensor_id + "', not '" +
                 identity.sensor_id + "'"};
  }
  return {};
}

Result<std::string> CertificateSha256Hex(X509* certificate) {
  return crypto::CertificateSha256Hex(certificate);
}

Status SyncDirectory(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + dir.string());
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + dir.string());
  return {};
}

}  // namespace custos::sensor
