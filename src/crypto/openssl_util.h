// Owning pointers for OpenSSL objects and the small conversions every file in
// src/crypto needs (errors, PEM, serials, times). Internal to custos_crypto
// and its users in the fleet and sensor; all functions are thread-safe
// (they touch only their arguments and OpenSSL's per-thread error queue).
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace custos::crypto {

template <typename T, void (*Free)(T*)>
struct OpenSslDeleter {
  void operator()(T* pointer) const { Free(pointer); }
};

using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO, BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslDeleter<BIGNUM, BN_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyContextPtr =
    std::unique_ptr<EVP_PKEY_CTX, OpenSslDeleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdContextPtr = std::unique_ptr<EVP_MD_CTX, OpenSslDeleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509, X509_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, OpenSslDeleter<X509_REQ, X509_REQ_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, OpenSslDeleter<X509_CRL, X509_CRL_free>>;
using X509RevokedPtr =
    std::unique_ptr<X509_REVOKED, OpenSslDeleter<X509_REVOKED, X509_REVOKED_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, OpenSslDeleter<X509_NAME, X509_NAME_free>>;
using X509ExtensionPtr =
    std::unique_ptr<X509_EXTENSION, OpenSslDeleter<X509_EXTENSION, X509_EXTENSION_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE, X509_STORE_free>>;
using X509StoreContextPtr =
    std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using Asn1IntegerPtr =
    std::unique_ptr<ASN1_INTEGER, OpenSslDeleter<ASN1_INTEGER, ASN1_INTEGER_free>>;
using Asn1TimePtr = std::unique_ptr<ASN1_TIME, OpenSslDeleter<ASN1_TIME, ASN1_TIME_free>>;
using GeneralNamesPtr =
    std::unique_ptr<GENERAL_NAMES, OpenSslDeleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

// Stacks that own only themselves, not the objects they point to.
struct CertificateStackDeleter {
  void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }
};
struct CrlStackDeleter {
  void operator()(STACK_OF(X509_CRL) * stack) const { sk_X509_CRL_free(stack); }
};
using CertificateStackPtr = std::unique_ptr<STACK_OF(X509), CertificateStackDeleter>;
using CrlStackPtr = std::unique_ptr<STACK_OF(X509_CRL), CrlStackDeleter>;

using TimePoint = std::chrono::system_clock::time_point;

// `what` followed by OpenSSL's queued reasons (the queue is emptied, so a
// later error never carries an earlier one's text).
Error OpenSslError(const std::string& what);

// A read-only BIO over `data`; it must outlive the BIO.
BioPtr MemoryBio(std::string_view data);
BioPtr MemoryBio(std::string&& temporary) = delete;  // would dangle
// Everything written to a memory BIO so far.
std::string BioContents(BIO* bio);

// Exactly one PEM certificate; anything else is an error naming the problem.
Result<X509Ptr> ParseCertificatePem(std::string_view pem);
// One or more PEM certificates, in file order (leaf first for a chain).
Result<std::vector<X509Ptr>> ParseCertificateChainPem(std::string_view pem);
std::string CertificateToPem(X509* certificate);

// Serial numbers travel as upper-case hex without leading zero bytes
// ("0A3F..."): the form BN_bn2hex prints.
std::string SerialHex(const ASN1_INTEGER* serial);
// Accepts hex in either case, with or without leading zeros; refuses
// anything else and non-positive values.
Result<std::string> NormalizeSerialHex(std::string_view hex);
Result<Asn1IntegerPtr> SerialFromHex(std::string_view hex);

Result<Asn1TimePtr> ToAsn1Time(TimePoint time);
Result<TimePoint> FromAsn1Time(const ASN1_TIME* time);

// One text field of a name (NID_commonName, NID_organizationName). Empty
// when absent; an error when present more than once or not valid UTF-8.
Result<std::string> NameField(const X509_NAME* name, int nid);

}  // namespace custos::crypto
