// token_bulk_import: imports many PEM private keys into one PKCS#11 token in a single session, for the
// bench's 10,000-site scenario (issue 7 point 3). softhsm2-util --import starts a process and re-reads the
// whole token for every key, which grows quadratically with the token; here one login serves every key.
//
// Usage: token_bulk_import MODULE TOKEN_LABEL PIN_FILE LIST
//   MODULE       PKCS#11 module path (e.g. /usr/lib/softhsm/libsofthsm2.so)
//   TOKEN_LABEL  label of an initialised token
//   PIN_FILE     file holding the user PIN (one trailing newline stripped)
//   LIST         lines "<key.pem> <label> <id hex>": each key becomes a private key object (CKA_SENSITIVE,
//                not CKA_EXTRACTABLE, CKA_SIGN) and its public key object, both with that label and CKA_ID
// Keys: RSA or EC (P-256 and any named curve OpenSSL knows). Exit status 0 when every key was imported;
// errors name the line and the PKCS#11 return value, never key material or the PIN.
// A bench tool only: the product imports keys with `orgproxy keys import` (keystore/src/admin_keys.cpp).
#include <dlfcn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <p11-kit/pkcs11.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct EvpPkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;

std::string bn_param(const EVP_PKEY* key, const char* name, std::size_t pad = 0) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1 || !bn) return {};
  std::size_t n = static_cast<std::size_t>(BN_num_bytes(bn));
  if (pad > n) n = pad;
  std::string out(n, '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n));
  BN_clear_free(bn);
  return out;
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE t, const void* v, std::size_t n) {
  return CK_ATTRIBUTE{t, const_cast<void*>(v), static_cast<CK_ULONG>(n)};
}
CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE t, const std::string& s) { return attr(t, s.data(), s.size()); }

CK_BBOOL kTrue = CK_TRUE, kFalse = CK_FALSE;

// Builds the private and public key templates of `key`; empty strings in `keep` hold the values alive.
bool templates(EVP_PKEY* key, std::vector<std::string>& keep, CK_KEY_TYPE& type, std::vector<CK_ATTRIBUTE>& priv,
               std::vector<CK_ATTRIBUTE>& pub) {
  keep.reserve(16);
  if (EVP_PKEY_is_a(key, "RSA")) {
    type = CKK_RSA;
    const char* names[] = {OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,         OSSL_PKEY_PARAM_RSA_D,
                           OSSL_PKEY_PARAM_RSA_FACTOR1,   OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
                           OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
    const CK_ATTRIBUTE_TYPE types[] = {CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
                                       CKA_PRIME_2, CKA_EXPONENT_1,      CKA_EXPONENT_2,       CKA_COEFFICIENT};
    for (int i = 0; i < 8; ++i) {
      keep.push_back(bn_param(key, names[i]));
      if (keep.back().empty()) return false;
      priv.push_back(attr(types[i], keep.back()));
      if (i < 2) pub.push_back(attr(types[i], keep.back()));
    }
    return true;
  }
  if (EVP_PKEY_is_a(key, "EC")) {
    type = CKK_EC;
    char group[64] = {0};
    std::size_t group_length = 0;
    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &group_length);
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef) nid = OBJ_ln2nid(group);
    unsigned char* der = nullptr;
    const int der_length = nid == NID_undef ? 0 : i2d_ASN1_OBJECT(OBJ_nid2obj(nid), &der);
    if (der_length <= 0) return false;
    keep.emplace_back(reinterpret_cast<char*>(der), static_cast<std::size_t>(der_length));
    OPENSSL_free(der);
    const std::string& params = keep.back();
    keep.push_back(bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, static_cast<std::size_t>((EVP_PKEY_get_bits(key) + 7) / 8)));
    const std::string& value = keep.back();
    unsigned char point[160];
    std::size_t point_length = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &point_length) != 1)
      return false;
    // CKA_EC_POINT is the DER OCTET STRING wrapping of the point (PKCS#11 2.40 §2.3.3).
    std::string os;
    os.push_back(0x04);
    if (point_length >= 0x80) os.push_back(static_cast<char>(0x81));  // P-521's 133 bytes: long form
    os.push_back(static_cast<char>(point_length));
    os.append(reinterpret_cast<char*>(point), point_length);
    keep.push_back(os);
    priv.push_back(attr(CKA_EC_PARAMS, params));
    priv.push_back(attr(CKA_VALUE, value));
    pub.push_back(attr(CKA_EC_PARAMS, params));
    pub.push_back(attr(CKA_EC_POINT, keep.back()));
    return !value.empty();
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: token_bulk_import MODULE TOKEN_LABEL PIN_FILE LIST\n");
    return 2;
  }
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    std::fprintf(stderr, "token_bulk_import: cannot load %s: %s\n", argv[1], dlerror());
    return 1;
  }
  auto get_list = reinterpret_cast<CK_RV (*)(CK_FUNCTION_LIST_PTR_PTR)>(dlsym(lib, "C_GetFunctionList"));
  CK_FUNCTION_LIST_PTR f = nullptr;
  if (!get_list || get_list(&f) != CKR_OK) {
    std::fprintf(stderr, "token_bulk_import: %s has no usable C_GetFunctionList\n", argv[1]);
    return 1;
  }
  CK_C_INITIALIZE_ARGS init{};
  init.flags = CKF_OS_LOCKING_OK;
  if (CK_RV rv = f->C_Initialize(&init); rv != CKR_OK) {
    std::fprintf(stderr, "token_bulk_import: C_Initialize: 0x%lx\n", rv);
    return 1;
  }
  CK_ULONG count = 0;
  f->C_GetSlotList(CK_TRUE, nullptr, &count);
  std::vector<CK_SLOT_ID> slots(count);
  f->C_GetSlotList(CK_TRUE, slots.data(), &count);
  const std::string wanted = argv[2];
  CK_SLOT_ID slot = 0;
  bool found = false;
  for (CK_ULONG i = 0; i < count && !found; ++i) {
    CK_TOKEN_INFO ti;
    if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK) continue;
    std::string label(reinterpret_cast<char*>(ti.label), sizeof ti.label);
    label.erase(label.find_last_not_of(' ') + 1);
    if (label == wanted) slot = slots[i], found = true;
  }
  if (!found) {
    std::fprintf(stderr, "token_bulk_import: no token labelled '%s'\n", argv[2]);
    return 1;
  }
  std::string pin;
  {
    std::ifstream in(argv[3]);
    std::getline(in, pin);
    if (!pin.empty() && pin.back() == '\r') pin.pop_back();
  }
  CK_SESSION_HANDLE s;
  if (CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s); rv != CKR_OK) {
    std::fprintf(stderr, "token_bulk_import: C_OpenSession: 0x%lx\n", rv);
    return 1;
  }
  if (CK_RV rv = f->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(pin.data()), pin.size());
      rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
    std::fprintf(stderr, "token_bulk_import: C_Login: 0x%lx (check the PIN file)\n", rv);
    return 1;
  }
  std::ifstream list(argv[4]);
  std::string line;
  int line_no = 0, imported = 0, failed = 0;
  while (std::getline(list, line)) {
    ++line_no;
    std::istringstream fields(line);
    std::string file, label, id_hex;
    if (!(fields >> file >> label >> id_hex)) continue;
    FILE* fp = std::fopen(file.c_str(), "r");
    EvpPkeyPtr key(fp ? PEM_read_PrivateKey(fp, nullptr, nullptr, nullptr) : nullptr);
    if (fp) std::fclose(fp);
    CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY, pub_class = CKO_PUBLIC_KEY;
    CK_KEY_TYPE type = 0;
    const std::string id = from_hex(id_hex);
    std::vector<std::string> keep;
    std::vector<CK_ATTRIBUTE> priv{attr(CKA_CLASS, &priv_class, sizeof priv_class), attr(CKA_TOKEN, &kTrue, 1),
                                   attr(CKA_PRIVATE, &kTrue, 1), attr(CKA_SENSITIVE, &kTrue, 1),
                                   attr(CKA_EXTRACTABLE, &kFalse, 1), attr(CKA_SIGN, &kTrue, 1),
                                   attr(CKA_ID, id), attr(CKA_LABEL, label)};
    std::vector<CK_ATTRIBUTE> pub{attr(CKA_CLASS, &pub_class, sizeof pub_class), attr(CKA_TOKEN, &kTrue, 1),
                                  attr(CKA_PRIVATE, &kFalse, 1), attr(CKA_VERIFY, &kTrue, 1), attr(CKA_ID, id),
                                  attr(CKA_LABEL, label)};
    if (!key || !templates(key.get(), keep, type, priv, pub)) {
      std::fprintf(stderr, "token_bulk_import: line %d: %s is not a readable RSA or EC private key\n", line_no,
                   file.c_str());
      ++failed;
      continue;
    }
    priv.push_back(attr(CKA_KEY_TYPE, &type, sizeof type));
    pub.push_back(attr(CKA_KEY_TYPE, &type, sizeof type));
    CK_OBJECT_HANDLE h;
    CK_RV rv = f->C_CreateObject(s, priv.data(), priv.size(), &h);
    if (rv == CKR_OK) rv = f->C_CreateObject(s, pub.data(), pub.size(), &h);
    for (auto& k : keep) OPENSSL_cleanse(k.data(), k.size());
    if (rv != CKR_OK) {
      std::fprintf(stderr, "token_bulk_import: line %d (%s): C_CreateObject: 0x%lx\n", line_no, label.c_str(), rv);
      ++failed;
      continue;
    }
    std::printf("%s\n", label.c_str());  // the caller records what is on the token
    ++imported;
  }
  f->C_Logout(s);
  f->C_CloseSession(s);
  f->C_Finalize(nullptr);
  std::fprintf(stderr, "token_bulk_import: %d key(s) imported, %d failed\n", imported, failed);
  return failed ? 1 : 0;
}
