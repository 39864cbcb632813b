// RAII owners for OpenSSL handles: every deleter in one place (STYLE.md).
#pragma once

#include <memory>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace orgproxy::keystore {

struct OsslDeleter {
  void operator()(X509* p) const noexcept { X509_free(p); }
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
  void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
  void operator()(SSL_SESSION* p) const noexcept { SSL_SESSION_free(p); }
  void operator()(X509_STORE* p) const noexcept { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const noexcept { X509_STORE_CTX_free(p); }
  void operator()(STACK_OF(X509)* p) const noexcept { sk_X509_pop_free(p, X509_free); }
  void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
  void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
  void operator()(BIO* p) const noexcept { BIO_free_all(p); }
  void operator()(X509_REQ* p) const noexcept { X509_REQ_free(p); }
  void operator()(X509_NAME* p) const noexcept { X509_NAME_free(p); }
};

using X509Ptr = std::unique_ptr<X509, OsslDeleter>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OsslDeleter>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, OsslDeleter>;
using SslSessionPtr = std::unique_ptr<SSL_SESSION, OsslDeleter>;
using X509StorePtr = std::unique_ptr<X509_STORE, OsslDeleter>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OsslDeleter>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), OsslDeleter>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OsslDeleter>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, OsslDeleter>;
using BioPtr = std::unique_ptr<BIO, OsslDeleter>;

}  // namespace orgproxy::keystore
