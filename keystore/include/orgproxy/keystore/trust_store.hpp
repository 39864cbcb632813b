// Parsed trust stores (CA bundle + CRL files) shared by identity chain checks and TLS client contexts.
// Parsing a CA bundle costs milliseconds; at start-up it was done once per identity (27 % of the start-up of
// 1,000 sites) and again in every SSL_CTX. The cache parses each distinct file set once and parses it again
// only when one of its files changed on disk.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <openssl/types.h>

#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {

/// Caches X509_STORE objects by (library context, CA bundle path, CRL file paths). A cached store is handed
/// out while every file still has the size, modification time, inode and device it had when parsed and was
/// last modified well before that (one stat per file); a file whose stamp changed, or was modified too
/// recently for its timestamp to be trusted (file-system timestamps are coarse), is read again and its
/// SHA-256 compared: same content, same store; new content, parsed again (so a bundle rotated by rename or
/// rewritten in place is picked up, and the store always holds exactly the bytes that were digested).
/// Stores are immutable once built and reference-counted, so they are shared by any number of SSL_CTX and
/// verifications on any thread. Thread-safe.
class TrustStoreCache {
 public:
  /// `forget_after`: an entry not asked for during this long is dropped at a later get() (the stores
  /// still referenced elsewhere live on through their reference count).
  explicit TrustStoreCache(std::chrono::seconds forget_after = std::chrono::minutes(10));

  /// The store trusting only the certificates of `ca_file` (PEM), with the CRLs of `crl_files` (PEM) and
  /// X509_V_FLAG_CRL_CHECK when there are any, parsed in `libctx` (nullptr: OpenSSL's default context).
  /// The caller owns one reference (X509StorePtr frees it). Returns nullptr and sets `error` (naming the
  /// file) when a file cannot be read or holds no certificate / no CRL; a failure is not cached.
  X509StorePtr get(OSSL_LIB_CTX* libctx, const std::string& ca_file, const std::vector<std::string>& crl_files,
                   std::string& error);

  /// How many times files were parsed into a store since construction (for tests and metrics).
  std::uint64_t parses() const;

  /// The process-wide cache used by make_client_context and verify_identity_chain(identity, ca_file).
  static TrustStoreCache& shared();

 private:
  struct FileStamp {
    std::string path;
    std::int64_t size = -1;
    std::int64_t mtime_ns = -1;
    std::uint64_t inode = 0;
    std::uint64_t device = 0;
    friend bool operator==(const FileStamp&, const FileStamp&) = default;
  };
  struct Entry {
    X509StorePtr store;
    std::vector<FileStamp> stamps;
    std::vector<std::string> digests;  ///< SHA-256 of each file's content, same order as the key
    std::int64_t stamped_at_ns = 0;    ///< wall clock just before the stamps were taken
    std::chrono::steady_clock::time_point last_used;
  };
  using Key = std::pair<OSSL_LIB_CTX*, std::vector<std::string>>;  // ca_file first, then the CRL files

  static bool stamp(const std::string& path, FileStamp& out);
  static bool fresh(const Entry& entry, const std::vector<FileStamp>& stamps);

  std::chrono::seconds forget_after_;
  mutable std::mutex mutex_;
  std::map<Key, Entry> entries_;
  std::uint64_t parses_ = 0;
};

/// verify_identity_chain with the trust store taken from `cache` (see keystore.hpp).
std::string verify_identity_chain(const Identity& identity, const std::string& ca_file, TrustStoreCache& cache);

}  // namespace orgproxy::keystore
