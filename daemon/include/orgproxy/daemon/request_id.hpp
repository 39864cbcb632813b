// X-Request-Id: the client's own id is kept when it is well-formed, so one id follows a request through the
// RIS, orgproxy's access log, the upstream and the answer; otherwise orgproxy's generated id is used.
#pragma once

#include <string>
#include <string_view>

namespace orgproxy::daemon {

/// True when `id` is 1 to 64 characters of [A-Za-z0-9._-] (safe in logs, headers and SOAP faults as is).
bool is_well_formed_request_id(std::string_view id);

/// The id to use for a request: `given` (the request's X-Request-Id value, "" when absent) copied into
/// `storage` when well-formed, else `generated`. The returned view points into `storage` or `generated`.
std::string_view adopt_request_id(std::string_view given, std::string& storage, std::string_view generated);

}  // namespace orgproxy::daemon
