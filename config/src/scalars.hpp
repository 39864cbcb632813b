// Strict readers for configuration scalars, working on the exact source text of a YAML scalar.
// yaml-cpp's as<int>() detects the base from the text (`0010` → 8) and as<bool>() accepts YAML 1.1's
// y/n/yes/no/on/off; these readers never do either (field case C25).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace orgproxy::config::detail {

/// A value read from text, or why it could not be read (error is then non-empty).
template <class T>
struct Parsed {
  std::optional<T> value;
  std::string error;
};

/// Decimal integer in [min, max]: digits only, no sign, no leading zero ("08443" is an error that says
/// "write 8443"), no base prefix, no separators.
Parsed<std::uint64_t> parse_decimal(std::string_view text, std::uint64_t min, std::uint64_t max);

/// Boolean: exactly `true` or `false`; yes/no/on/off/y/n and other spellings are errors naming the
/// allowed ones.
Parsed<bool> parse_bool(std::string_view text);

/// Duration: a decimal number followed by a unit, `ms`, `s`, `m` or `h` (`500ms`, `5s`, `2m`, `1h`).
/// A bare number is an error (the unit is never guessed). Result in milliseconds.
Parsed<std::chrono::milliseconds> parse_duration(std::string_view text);

/// Size in bytes: plain decimal bytes (`65536`) or a number with an IEC unit `B`, `KiB`, `MiB`, `GiB`
/// (`64KiB`, `20MiB`). Decimal SI units (`KB`, `MB`) are refused because they are ambiguous.
Parsed<std::uint64_t> parse_size(std::string_view text);

/// Human form of a duration in the config's own spelling ("1500ms", "5s", "2m"), for messages.
std::string format_duration(std::chrono::milliseconds d);

/// Human form of a byte count in the config's own spelling ("64KiB", "1000"), for messages.
std::string format_size(std::uint64_t bytes);

}  // namespace orgproxy::config::detail
