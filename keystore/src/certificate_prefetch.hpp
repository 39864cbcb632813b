// Certificate files of one identity load, read and checked on a second thread while the calling thread
// does the token's part (login, object index, key matching).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "identity.hpp"
#include "orgproxy/keystore/keystore.hpp"

namespace orgproxy::keystore {

/// What load_one does first for an identity with a `cert:` file: read the chain and check the leaf against
/// the spec. At 10,000 sites this is a third of the start's CPU (OpenSSL 3.0 builds a decoder context for
/// every certificate's public key), and it needs nothing from the token: a reader thread does it, in spec
/// order, while the caller indexes the token; the caller takes each result when it reaches that spec.
/// The outcome of every spec (chain or error text) is exactly what the serial path gives, and errors are
/// still raised by the caller, in spec order: the start stays deterministic. Specs without a cert file
/// (certificate on the token) are skipped. No thread for fewer than two cert files.
class CertificatePrefetch {
 public:
  /// The outcome for one spec: `chain.leaf` set, or `error` (the KeystoreError text load_one raises).
  struct Result {
    CertificateChain chain;
    std::string error;
  };

  /// Starts reading `specs` (kept by reference: must outlive this object); `now` is the load's clock for
  /// the validity checks.
  CertificatePrefetch(const std::vector<IdentitySpec>& specs, std::chrono::system_clock::time_point now);
  /// Stops the reader at its next spec and joins it (a load that ends early does not wait for the rest).
  ~CertificatePrefetch();
  CertificatePrefetch(const CertificatePrefetch&) = delete;
  CertificatePrefetch& operator=(const CertificatePrefetch&) = delete;

  /// The outcome of spec `index` (a cert-file spec), waiting for the reader to get there; moved out, so
  /// taken once. Without a reader thread, computed here.
  Result take(std::size_t index);

  /// Reads and checks one certificate file as load_one always did (same messages).
  static Result read_one(const IdentitySpec& spec, std::chrono::system_clock::time_point now,
                         CaCertificateCache& cache);

 private:
  void run();

  const std::vector<IdentitySpec>& specs_;
  const std::chrono::system_clock::time_point now_;
  std::vector<Result> results_;
  CaCertificateCache cache_;  ///< the reader's alone while it runs (not thread-safe)
  std::mutex mutex_;
  std::condition_variable advanced_;
  std::size_t done_ = 0;  ///< specs [0, done_) have their result (guarded by mutex_)
  bool stop_ = false;     ///< guarded by mutex_
  std::thread reader_;
};

}  // namespace orgproxy::keystore
