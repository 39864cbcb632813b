// Parsed CA bundles (and CRLs) cached per file set, parsed again when a file's content changes on disk.
#include "orgproxy/keystore/trust_store.hpp"

#include <sys/stat.h>

#include <fstream>
#include <iterator>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

namespace orgproxy::keystore {
namespace {

// A file modified less than this before its stamp was taken may change again without its stamp changing
// (mtime has the kernel's coarse clock granularity; NFS adds skew): its content is checked instead.
constexpr std::int64_t kRacyWindowNs = 2'000'000'000;

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::int64_t wall_clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

std::string sha256(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    ERR_clear_error();
    return {};  // never equal to a real digest's 32 bytes: the content counts as changed
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

// Adds the certificates (want_certs) or CRLs of one PEM text to the store; returns how many.
int add_pem_objects(X509_STORE* store, const std::string& pem, OSSL_LIB_CTX* libctx, bool want_certs) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return 0;
  STACK_OF(X509_INFO)* infos = PEM_X509_INFO_read_bio_ex(bio.get(), nullptr, nullptr, nullptr, libctx, nullptr);
  int count = 0;
  for (int i = 0; infos != nullptr && i < sk_X509_INFO_num(infos); ++i) {
    X509_INFO* info = sk_X509_INFO_value(infos, i);
    if (want_certs && info->x509 != nullptr && X509_STORE_add_cert(store, info->x509) == 1) ++count;
    if (!want_certs && info->crl != nullptr && X509_STORE_add_crl(store, info->crl) == 1) ++count;
  }
  sk_X509_INFO_pop_free(infos, X509_INFO_free);
  ERR_clear_error();
  return count;
}

// Parses the contents (CA bundle first, then CRL files) into a new store. Called without the cache lock
// held: a large bundle must not stall other threads asking for other stores.
X509StorePtr parse_store(OSSL_LIB_CTX* libctx, const std::vector<std::string>& paths,
                         const std::vector<std::string>& contents, std::string& error) {
  X509StorePtr store(X509_STORE_new());
  if (!store) {
    error = "X509_STORE_new failed: " + openssl_error();
    return nullptr;
  }
  if (add_pem_objects(store.get(), contents.front(), libctx, true) == 0) {
    error = "cannot load CA file " + paths.front() + ": no PEM certificate in it";
    return nullptr;
  }
  for (std::size_t i = 1; i < paths.size(); ++i) {
    if (add_pem_objects(store.get(), contents[i], libctx, false) == 0) {
      error = "no CRL in " + paths[i];
      return nullptr;
    }
  }
  if (paths.size() > 1) X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK);
  return store;
}

X509StorePtr another_reference(X509_STORE* store) {
  X509_STORE_up_ref(store);
  return X509StorePtr(store);
}

}  // namespace

TrustStoreCache::TrustStoreCache(std::chrono::seconds forget_after) : forget_after_(forget_after) {}

TrustStoreCache& TrustStoreCache::shared() {
  static TrustStoreCache cache;
  return cache;
}

bool TrustStoreCache::stamp(const std::string& path, FileStamp& out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  out.path = path;
  out.size = static_cast<std::int64_t>(st.st_size);
  out.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  out.inode = static_cast<std::uint64_t>(st.st_ino);
  out.device = static_cast<std::uint64_t>(st.st_dev);
  return true;
}

bool TrustStoreCache::fresh(const Entry& entry, const std::vector<FileStamp>& stamps) {
  if (entry.stamps != stamps) return false;
  for (const FileStamp& s : stamps)
    if (s.mtime_ns > entry.stamped_at_ns - kRacyWindowNs) return false;
  return true;
}

X509StorePtr TrustStoreCache::get(OSSL_LIB_CTX* libctx, const std::string& ca_file,
                                  const std::vector<std::string>& crl_files, std::string& error) {
  Key key{libctx, {ca_file}};
  key.second.insert(key.second.end(), crl_files.begin(), crl_files.end());
  const std::vector<std::string>& paths = key.second;
  auto what = [&](std::size_t i) { return std::string(i == 0 ? "CA file " : "CRL file ") + paths[i]; };

  // The clock is read before the stamps: a change made after this instant gets a later mtime, which the
  // racy window of fresh() catches even when the coarse mtime equals an earlier one.
  const std::int64_t stamped_at = wall_clock_ns();
  std::vector<FileStamp> stamps(paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (!stamp(paths[i], stamps[i])) {
      error = "cannot read " + what(i);
      return nullptr;
    }
  }

  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    std::erase_if(entries_, [&](const auto& kv) { return now - kv.second.last_used > forget_after_; });
    if (auto it = entries_.find(key); it != entries_.end() && fresh(it->second, stamps)) {
      it->second.last_used = now;
      return another_reference(it->second.store.get());
    }
  }

  // Stamp changed or too recent to trust: compare contents.
  std::vector<std::string> contents(paths.size()), digests(paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (!read_file(paths[i], contents[i])) {
      error = "cannot read " + what(i);
      return nullptr;
    }
    digests[i] = sha256(contents[i]);
  }
  {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(key); it != entries_.end() && it->second.digests == digests) {
      it->second.stamps = stamps;
      it->second.stamped_at_ns = stamped_at;
      it->second.last_used = now;
      return another_reference(it->second.store.get());
    }
  }

  X509StorePtr store = parse_store(libctx, paths, contents, error);
  if (!store) return nullptr;
  std::lock_guard lock(mutex_);
  ++parses_;
  Entry& entry = entries_[key];
  // Another thread may have parsed the same content meanwhile: keep its store so both callers share one.
  if (!entry.store || entry.digests != digests) {
    entry.store = std::move(store);
    entry.digests = std::move(digests);
  }
  entry.stamps = std::move(stamps);
  entry.stamped_at_ns = stamped_at;
  entry.last_used = now;
  return another_reference(entry.store.get());
}

std::uint64_t TrustStoreCache::parses() const {
  std::lock_guard lock(mutex_);
  return parses_;
}

}  // namespace orgproxy::keystore
