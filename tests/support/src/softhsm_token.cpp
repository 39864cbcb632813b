// SoftHsmToken: token initialisation through softhsm2-util, key generation through p11-kit (managed mode).
#include "orgproxy/testkit/softhsm_token.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

extern char** environ;

namespace orgproxy::testkit {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail_ck(const char* call, CK_RV rv) {
  std::ostringstream out;
  out << "SoftHsmToken: " << call << " failed: CKR 0x" << std::hex << rv;
  throw std::runtime_error(out.str());
}

void check(const char* call, CK_RV rv) {
  if (rv != CKR_OK) fail_ck(call, rv);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Runs softhsm2-util with the current environment (SOFTHSM2_CONF already set), output to `log`.
/// posix_spawn: nothing of this process (e.g. an initialised PKCS#11 module) runs in the child.
void run_softhsm2_util(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<char*> argv;
  std::string program = "softhsm2-util";
  argv.push_back(program.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("SoftHsmToken: cannot start softhsm2-util: " + std::string(strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("SoftHsmToken: softhsm2-util failed: " + read_text(log));
}

std::string padded_label(const std::string& label) {
  std::string out = label.substr(0, 32);
  out.resize(32, ' ');
  return out;
}

/// One short PKCS#11 session on the token, logged in as user. The module is loaded managed (p11-kit passes
/// CKF_OS_LOCKING_OK) and finalised at the end; p11-kit counts initialisations, so another user of the
/// module in this process keeps its state. The session is closed, never logged out: C_Logout would end the
/// login of every session of this application on the token, including a keystore's.
class UserSession {
 public:
  UserSession(const std::string& token_label, const std::string& pin) {
    module_ = p11_kit_module_load(SoftHsmToken::module_path().c_str(), 0);
    if (module_ == nullptr)
      throw std::runtime_error("SoftHsmToken: cannot load " + SoftHsmToken::module_path() + ": " +
                               p11_kit_message());
    if (CK_RV rv = p11_kit_module_initialize(module_); rv != CKR_OK) {
      p11_kit_module_release(module_);
      fail_ck("C_Initialize", rv);
    }
    try {
      open(token_label, pin);
    } catch (...) {
      p11_kit_module_finalize(module_);
      p11_kit_module_release(module_);
      throw;
    }
  }
  ~UserSession() {
    module_->C_CloseSession(session_);
    p11_kit_module_finalize(module_);
    p11_kit_module_release(module_);
  }
  UserSession(const UserSession&) = delete;
  UserSession& operator=(const UserSession&) = delete;

  CK_FUNCTION_LIST* f() const { return module_; }
  CK_SESSION_HANDLE handle() const { return session_; }

  std::string attribute(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) const {
    CK_ATTRIBUTE attr{type, nullptr, 0};
    check("C_GetAttributeValue", module_->C_GetAttributeValue(session_, object, &attr, 1));
    std::string value(attr.ulValueLen, '\0');
    attr.pValue = value.data();
    check("C_GetAttributeValue", module_->C_GetAttributeValue(session_, object, &attr, 1));
    return value;
  }

 private:
  void open(const std::string& token_label, const std::string& pin) {
    CK_ULONG count = 0;
    check("C_GetSlotList", module_->C_GetSlotList(CK_TRUE, nullptr, &count));
    std::vector<CK_SLOT_ID> slots(count);
    check("C_GetSlotList", module_->C_GetSlotList(CK_TRUE, slots.data(), &count));
    const std::string wanted = padded_label(token_label);
    for (CK_ULONG i = 0; i < count; ++i) {
      CK_TOKEN_INFO info;
      if (module_->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
      if (std::memcmp(info.label, wanted.data(), 32) != 0) continue;
      check("C_OpenSession",
            module_->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session_));
      CK_RV rv = module_->C_Login(session_, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.data())),
                                  pin.size());
      if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        module_->C_CloseSession(session_);
        fail_ck("C_Login", rv);
      }
      return;
    }
    throw std::runtime_error("SoftHsmToken: no token labelled '" + token_label +
                             "' (was SoftHSM initialised before the token was created?)");
  }

  CK_FUNCTION_LIST* module_ = nullptr;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

const std::string& ec_params_der(KeyType type) {
  // DER OBJECT IDENTIFIERs: prime256v1 (1.2.840.10045.3.1.7) and secp384r1 (1.3.132.0.34).
  static const std::string p256("\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07", 10);
  static const std::string p384("\x06\x05\x2b\x81\x04\x00\x22", 7);
  return type == KeyType::ec_p384 ? p384 : p256;
}

PkeyHandle public_key_from_params(const char* type, OSSL_PARAM_BLD* bld) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* key = nullptr;
  bool ok = params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
            EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  if (!ok) {
    ERR_clear_error();
    throw std::runtime_error("SoftHsmToken: cannot build the public key read from the token");
  }
  return PkeyHandle(key);
}

PkeyHandle read_public_key(const UserSession& s, CK_OBJECT_HANDLE pub, KeyType type) {
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (type == KeyType::rsa2048) {
    std::string n = s.attribute(pub, CKA_MODULUS);
    std::string e = s.attribute(pub, CKA_PUBLIC_EXPONENT);
    BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr);
    BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e);
    PkeyHandle key = public_key_from_params("RSA", bld);  // the builder copied the numbers
    BN_free(bn_n);
    BN_free(bn_e);
    return key;
  }
  // CKA_EC_POINT is the DER OCTET STRING wrapping the uncompressed point (PKCS#11 v2.40 §2.3.3).
  std::string der = s.attribute(pub, CKA_EC_POINT);
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ASN1_OCTET_STRING* os = d2i_ASN1_OCTET_STRING(nullptr, &p, static_cast<long>(der.size()));
  if (os == nullptr) throw std::runtime_error("SoftHsmToken: CKA_EC_POINT is not a DER OCTET STRING");
  std::string point(reinterpret_cast<const char*>(ASN1_STRING_get0_data(os)), ASN1_STRING_length(os));
  ASN1_OCTET_STRING_free(os);
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, type == KeyType::ec_p384 ? "P-384" : "P-256", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  return public_key_from_params("EC", bld);
}

}  // namespace

std::string pkcs11_uri_encode(const std::string& bytes) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : bytes) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0x0f];
    }
  }
  return out;
}

std::string SoftHsmToken::module_path() {
#ifdef ORGPROXY_SOFTHSM2_MODULE
  return ORGPROXY_SOFTHSM2_MODULE;
#else
  return "/usr/lib/softhsm/libsofthsm2.so";
#endif
}

SoftHsmToken::SoftHsmToken(std::filesystem::path dir, std::string label, std::string user_pin, std::string so_pin)
    : SoftHsmToken(std::move(dir), std::move(label), std::move(user_pin), SoftHsmConfig{std::move(so_pin), "ALL"}) {}

SoftHsmToken::SoftHsmToken(std::filesystem::path dir, std::string label, std::string user_pin,
                           const SoftHsmConfig& config)
    : dir_(fs::absolute(dir)), label_(std::move(label)), user_pin_(std::move(user_pin)) {
  const std::string& so_pin = config.so_pin;
  if (label_.empty() || label_.size() > 32) throw std::invalid_argument("SoftHsmToken: label must be 1..32 bytes");
  fs::create_directories(dir_ / "tokens");
  conf_path_ = dir_ / "softhsm2.conf";
  if (!fs::exists(conf_path_)) {
    std::ofstream conf(conf_path_);
    conf << "directories.tokendir = " << (dir_ / "tokens").string() << "\n"
         << "objectstore.backend = file\n"
         << "log.level = ERROR\n"
         << "slots.removable = false\n"
         << "slots.mechanisms = " << config.mechanisms << "\n"
         << "library.reset_on_fork = false\n";
    if (!conf) throw std::runtime_error("SoftHsmToken: cannot write " + conf_path_.string());
  }
  ::setenv("SOFTHSM2_CONF", conf_path_.c_str(), 1);

  run_softhsm2_util({"--init-token", "--free", "--label", label_, "--so-pin", so_pin, "--pin", user_pin_},
                    dir_ / "softhsm2-util.log");

  std::string name = label_;
  for (char& c : name)
    if (c == '/' || c == ' ') c = '_';
  pin_file_ = dir_ / (name + ".pin");
  std::ofstream pin(pin_file_, std::ios::binary | std::ios::trunc);
  pin << user_pin_ << "\n";
  pin.close();
  if (!pin) throw std::runtime_error("SoftHsmToken: cannot write " + pin_file_.string());
  fs::permissions(pin_file_, fs::perms::owner_read | fs::perms::owner_write);
}

TokenKey SoftHsmToken::generate_key(const TokenKeyOptions& options) {
  if (options.id.empty()) throw std::invalid_argument("SoftHsmToken: a key needs a CKA_ID");
  UserSession s(label_, user_pin_);
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_BBOOL sensitive = options.sensitive ? CK_TRUE : CK_FALSE;
  CK_BBOOL extractable = options.extractable ? CK_TRUE : CK_FALSE;
  std::string id = options.id, label = options.label;
  CK_ULONG bits = 2048;
  CK_BYTE exponent[] = {0x01, 0x00, 0x01};
  std::string ec_params = ec_params_der(options.type);
  const bool rsa = options.type == KeyType::rsa2048;

  std::vector<CK_ATTRIBUTE> pub = {
      {CKA_TOKEN, &yes, sizeof yes}, {CKA_PRIVATE, &no, sizeof no}, {CKA_VERIFY, &yes, sizeof yes},
      {CKA_ENCRYPT, &no, sizeof no}, {CKA_ID, id.data(), id.size()}, {CKA_LABEL, label.data(), label.size()}};
  if (rsa) {
    pub.push_back({CKA_MODULUS_BITS, &bits, sizeof bits});
    pub.push_back({CKA_PUBLIC_EXPONENT, exponent, sizeof exponent});
  } else {
    pub.push_back({CKA_EC_PARAMS, ec_params.data(), ec_params.size()});
  }
  std::vector<CK_ATTRIBUTE> priv = {{CKA_TOKEN, &yes, sizeof yes},
                                    {CKA_PRIVATE, &yes, sizeof yes},
                                    {CKA_SIGN, &yes, sizeof yes},
                                    {CKA_DECRYPT, &no, sizeof no},
                                    {CKA_SENSITIVE, &sensitive, sizeof sensitive},
                                    {CKA_EXTRACTABLE, &extractable, sizeof extractable},
                                    {CKA_ID, id.data(), id.size()},
                                    {CKA_LABEL, label.data(), label.size()}};
  CK_MECHANISM mech{rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  CK_OBJECT_HANDLE pub_handle = CK_INVALID_HANDLE, priv_handle = CK_INVALID_HANDLE;
  check("C_GenerateKeyPair", s.f()->C_GenerateKeyPair(s.handle(), &mech, pub.data(), pub.size(), priv.data(),
                                                       priv.size(), &pub_handle, &priv_handle));
  TokenKey key;
  key.public_key = read_public_key(s, pub_handle, options.type);
  key.id = options.id;
  key.label = options.label;
  key.uri = uri_for(options.id);
  return key;
}

void SoftHsmToken::store_certificate(X509* cert, const std::string& id, const std::string& label) {
  unsigned char* der = nullptr;
  int der_len = i2d_X509(cert, &der);
  if (der_len <= 0) throw std::runtime_error("SoftHsmToken: cannot DER-encode the certificate");
  std::string value(reinterpret_cast<char*>(der), static_cast<size_t>(der_len));
  OPENSSL_free(der);
  unsigned char* subject_der = nullptr;
  int subject_len = i2d_X509_NAME(X509_get_subject_name(cert), &subject_der);
  std::string subject(reinterpret_cast<char*>(subject_der), static_cast<size_t>(subject_len > 0 ? subject_len : 0));
  OPENSSL_free(subject_der);

  UserSession s(label_, user_pin_);
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_CERTIFICATE_TYPE cert_type = CKC_X_509;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  std::string id_copy = id, label_copy = label;
  CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls},
                         {CKA_CERTIFICATE_TYPE, &cert_type, sizeof cert_type},
                         {CKA_TOKEN, &yes, sizeof yes},
                         {CKA_PRIVATE, &no, sizeof no},
                         {CKA_ID, id_copy.data(), id_copy.size()},
                         {CKA_LABEL, label_copy.data(), label_copy.size()},
                         {CKA_SUBJECT, subject.data(), subject.size()},
                         {CKA_VALUE, value.data(), value.size()}};
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  check("C_CreateObject", s.f()->C_CreateObject(s.handle(), tmpl, sizeof tmpl / sizeof tmpl[0], &handle));
}

std::string SoftHsmToken::uri_for(const std::string& id, const std::string& object_label,
                                  const std::string& type) const {
  std::string uri = "pkcs11:token=" + pkcs11_uri_encode(label_);
  if (!id.empty()) uri += ";id=" + pkcs11_uri_encode(id);
  if (!object_label.empty()) uri += ";object=" + pkcs11_uri_encode(object_label);
  if (!type.empty()) uri += ";type=" + type;
  return uri;
}

}  // namespace orgproxy::testkit
