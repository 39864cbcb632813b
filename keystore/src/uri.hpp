// RFC 7512 PKCS#11 URIs naming a private key, parsed with p11-kit. Internal to the keystore.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <p11-kit/uri.h>

#include "pkcs11.hpp"

namespace orgproxy::keystore {

class Module;

/// A parsed key URI: the token it names (token, manufacturer, serial, model), the object (id, object,
/// type=private) and the module (module-name, module-path), with the PIN attributes of its query.
class KeyUri {
 public:
  /// Parses `text` (p11_kit_uri_parse, %-decoding per RFC 7512 §2.3). Refused, with a KeystoreError whose
  /// message never quotes a PIN: a non-`pkcs11:` scheme, bad %-encoding, unknown attributes, `type` other
  /// than `private`, `pin-value`/`pin-source` in the path (they belong to the query), `?pin-value=` unless
  /// `allow_pin_value`, slot attributes (slot ids move when SoftHSM re-initialises; use the token label).
  static KeyUri parse(const std::string& text, bool allow_pin_value);

  /// The URI cut after "pin-value=" (replaced by "***"), for messages and logs.
  const std::string& display() const { return display_; }
  /// Whether the module attributes (module-name: library file name without "lib" and extension, or the
  /// configured module name; module-path: exact path) allow `module`.
  bool matches_module(const Module& module) const;
  bool matches_token(const CK_TOKEN_INFO& info) const;
  /// Whether a private key with this CKA_ID / CKA_LABEL matches the URI's object attributes.
  bool matches_object(const std::string& id, const std::string& label) const;

  /// The URI's `id` (raw CKA_ID bytes, %-decoded) and `object` (CKA_LABEL), when given: what an index of
  /// the token's keys is searched by before matches_object() decides.
  const std::optional<std::string>& id() const { return id_; }
  const std::optional<std::string>& label() const { return label_; }

  const std::optional<std::string>& pin_value() const { return pin_value_; }
  /// `?pin-source=` (a file path, optionally as `file:` URI); empty when absent.
  const std::string& pin_source() const { return pin_source_; }

 private:
  struct UriFree {
    void operator()(P11KitUri* u) const noexcept;
  };
  std::shared_ptr<P11KitUri> uri_;
  std::string display_;
  std::optional<std::string> pin_value_;
  std::optional<std::string> id_, label_;
  std::string pin_source_;
  std::string module_name_, module_path_;
};

/// A CKA_ID written as RFC 7512 %-encoding of every byte ("%01%FE"), for messages naming a key object.
std::string percent_encode_id(const std::string& id);

}  // namespace orgproxy::keystore
