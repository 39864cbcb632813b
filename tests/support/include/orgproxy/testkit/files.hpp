// Small file helpers for tests: whole-file reads and writes, the repository's sample messages, and the
// names a test compares with what an upstream reports about a certificate.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace orgproxy::testkit {

/// Whole file as bytes. Throws std::runtime_error naming the path when it cannot be read.
std::string read_file(const std::filesystem::path& path);
/// Writes (truncates) a file; `mode` applied with chmod (e.g. 0600 for a PIN file).
/// Throws std::runtime_error naming the path.
void write_file(const std::filesystem::path& path, std::string_view bytes, unsigned mode = 0644);

/// tests/samples/<name> in the source tree.
std::filesystem::path sample_path(std::string_view name);
/// The sample's bytes with every `@@STRUCTURE_ID@@` replaced by `structure_id` (unchanged when "").
std::string load_sample(std::string_view name, std::string_view structure_id = "");

/// Subject DN of the first certificate of a PEM file, RFC 2253 (as nginx's $ssl_client_s_dn).
std::string cert_subject_rfc2253(const std::filesystem::path& pem_file);
/// Serial of the first certificate of a PEM file, upper-case hex (as nginx's $ssl_client_serial).
std::string cert_serial_hex(const std::filesystem::path& pem_file);

}  // namespace orgproxy::testkit
