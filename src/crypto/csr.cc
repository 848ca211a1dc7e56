#include "crypto/csr.h"

#include <openssl/err.h>
#include <openssl/pem.h>

namespace custos::crypto {
namespace {

// Ours are well under 1 KiB; the bound keeps hostile input cheap to refuse.
constexpr size_t kMaxCsrPemBytes = 16 * 1024;
// RFC 5280 upper bound for a common name.
constexpr size_t kMaxCommonNameLength = 64;

}  // namespace

Result<Csr> Csr::Create(const KeyPair& key, const std::string& common_name) {
  if (common_name.empty() || common_name.size() > kMaxCommonNameLength) {
    return Error{"CSR common name must be 1 to 64 characters"};
  }
  ERR_clear_error();
  X509ReqPtr request(X509_REQ_new());
  if (!request) return OpenSslError("cannot allocate a CSR");
  X509_NAME* subject = X509_REQ_get_subject_name(request.get());
  if (X509_REQ_set_version(request.get(), X509_REQ_VERSION_1) != 1 ||
      X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1 ||
      X509_REQ_set_pubkey(request.get(), key.get()) != 1) {
    return OpenSslError("cannot build CSR");
  }
  if (X509_REQ_sign(request.get(), key.get(), SigningDigest(key.get())) <= 0) {
    return OpenSslError("cannot sign CSR");
  }
  return Csr(std::move(request), common_name);
}

Result<Csr> Csr::Parse(std::string_view pem) {
  if (pem.size() > kMaxCsrPemBytes) return Error{"CSR is larger than 16 KiB"};
  ERR_clear_error();
  BioPtr bio = MemoryBio(pem);
  if (!bio) return OpenSslError("cannot read CSR");
  X509ReqPtr request(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!request) return OpenSslError("CSR is not a valid PEM CERTIFICATE REQUEST");
  if (X509_REQ_get_version(request.get()) != X509_REQ_VERSION_1) {
    return Error{"CSR has an unknown version"};
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(request.get());
  if (!key) return OpenSslError("CSR public key cannot be decoded");
  CUSTOS_TRY(CheckAcceptableKey(key, "CSR public key"));
  int verified = X509_REQ_verify(request.get(), key);
  if (verified != 1) {
    ERR_clear_error();
    return Error{"CSR signature does not verify with its public key (tampered or damaged)"};
  }
  auto common_name = NameField(X509_REQ_get_subject_name(request.get()), NID_commonName);
  if (!common_name.ok()) return Context("CSR subject", common_name.error());
  return Csr(std::move(request), std::move(*common_name));
}

std::string Csr::Pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), request_.get()) != 1) return {};
  return BioContents(bio.get());
}

}  // namespace custos::crypto
