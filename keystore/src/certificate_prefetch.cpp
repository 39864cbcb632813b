#include "certificate_prefetch.hpp"

#include <algorithm>
#include <exception>

namespace orgproxy::keystore {

CertificatePrefetch::CertificatePrefetch(const std::vector<IdentitySpec>& specs,
                                         std::chrono::system_clock::time_point now)
    : specs_(specs), now_(now) {
  const auto files = std::count_if(specs.begin(), specs.end(), [](const IdentitySpec& s) { return !s.cert_file.empty(); });
  if (files < 2) return;
  results_.resize(specs.size());
  reader_ = std::thread([this] { run(); });
}

CertificatePrefetch::~CertificatePrefetch() {
  if (!reader_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  reader_.join();
}

CertificatePrefetch::Result CertificatePrefetch::read_one(const IdentitySpec& spec,
                                                          std::chrono::system_clock::time_point now,
                                                          CaCertificateCache& cache) {
  Result r;
  r.chain = read_certificate_chain(spec.cert_file, cache);
  if (!r.chain.leaf) {
    r.error = r.chain.error;
  } else if (std::string why = check_certificate(r.chain.leaf.get(), spec, now); !why.empty()) {
    r.error = spec.cert_file + ": " + why;
    r.chain = {};
  }
  return r;
}

void CertificatePrefetch::run() {
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    Result r;
    if (!specs_[i].cert_file.empty()) {
      try {
        r = read_one(specs_[i], now_, cache_);
      } catch (const std::exception& e) {
        // Only an allocation failure gets here; the serial path would have failed this spec too.
        r.chain = {};
        r.error = std::string("reading ") + specs_[i].cert_file + ": " + e.what();
      }
    }
    std::lock_guard lock(mutex_);
    results_[i] = std::move(r);
    done_ = i + 1;
    advanced_.notify_one();
    if (stop_) return;
  }
}

CertificatePrefetch::Result CertificatePrefetch::take(std::size_t index) {
  if (!reader_.joinable()) return read_one(specs_[index], now_, cache_);
  std::unique_lock lock(mutex_);
  advanced_.wait(lock, [&] { return done_ > index; });
  return std::move(results_[index]);
}

}  // namespace orgproxy::keystore
