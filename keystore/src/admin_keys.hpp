// Key creation for KeyAdmin: generation + CSR, PKCS#12 import, certificate installation. Internal.
#pragma once

#include <memory>
#include <string>

#include "orgproxy/keystore/admin.hpp"
#include "token.hpp"

namespace orgproxy::keystore::admin_detail {

GeneratedKey generate_key_pair(const std::shared_ptr<Token>& token, const std::string& tenant_id,
                               const std::string& purpose, const OrgRequestSubject& subject);
std::string import_pkcs12_file(Token& token, const std::string& tenant_id, const std::string& purpose,
                               const std::string& p12_file, const std::string& password);
std::string install_certificate_file(Token& token, const std::string& tenant_id, const std::string& purpose,
                                     const std::string& cert_file);

}  // namespace orgproxy::keystore::admin_detail
