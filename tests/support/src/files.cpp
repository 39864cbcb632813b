#include "orgproxy/testkit/files.hpp"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace orgproxy::testkit {
namespace {

struct X509Deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct BioDeleter {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};

std::unique_ptr<X509, X509Deleter> first_cert(const std::filesystem::path& pem_file) {
  std::unique_ptr<BIO, BioDeleter> in(BIO_new_file(pem_file.c_str(), "r"));
  if (!in) throw std::runtime_error("cannot open certificate file " + pem_file.string());
  std::unique_ptr<X509, X509Deleter> cert(PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
  if (!cert) throw std::runtime_error("no PEM certificate in " + pem_file.string());
  return cert;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::filesystem::path& path, std::string_view bytes, unsigned mode) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path.string());
  }
  ::chmod(path.c_str(), mode);
}

std::filesystem::path sample_path(std::string_view name) {
  return std::filesystem::path(ORGPROXY_SOURCE_DIR) / "tests" / "samples" / std::string(name);
}

std::string load_sample(std::string_view name, std::string_view structure_id) {
  std::string text = read_file(sample_path(name));
  if (structure_id.empty()) return text;
  static constexpr std::string_view placeholder = "@@STRUCTURE_ID@@";
  for (auto pos = text.find(placeholder); pos != std::string::npos; pos = text.find(placeholder, pos)) {
    text.replace(pos, placeholder.size(), structure_id);
    pos += structure_id.size();
  }
  return text;
}

std::string cert_subject_rfc2253(const std::filesystem::path& pem_file) {
  auto cert = first_cert(pem_file);
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert.get()), 0, XN_FLAG_RFC2253);
  return bio_text(bio.get());
}

std::string cert_serial_hex(const std::filesystem::path& pem_file) {
  auto cert = first_cert(pem_file);
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  i2a_ASN1_INTEGER(bio.get(), X509_get_serialNumber(cert.get()));
  return bio_text(bio.get());
}

}  // namespace orgproxy::testkit
