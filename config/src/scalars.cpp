#include "scalars.hpp"

#include <algorithm>
#include <array>
#include <limits>

namespace orgproxy::config::detail {
namespace {

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Digits → value with overflow detection; `s` must be all digits.
std::optional<std::uint64_t> to_u64(std::string_view s) {
  std::uint64_t v = 0;
  for (char c : s) {
    const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

// The number part shared by integers, durations and sizes. Empty error = ok.
std::string check_number_text(std::string_view number, std::string_view whole) {
  if (number.empty()) return "'" + std::string(whole) + "' does not start with a decimal number";
  if (number.size() > 1 && number[0] == '0') {
    std::string_view rest = number.substr(
        number.find_first_not_of('0') == std::string_view::npos ? number.size() - 1 : number.find_first_not_of('0'));
    return "'" + std::string(whole) + "' has a leading zero: numbers are decimal here (never octal), write " +
           std::string(rest) + std::string(whole.substr(number.size())) + ", not " + std::string(whole);
  }
  return {};
}

}  // namespace

Parsed<std::uint64_t> parse_decimal(std::string_view text, std::uint64_t min, std::uint64_t max) {
  if (text.size() > 1 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X' || text[1] == 'o' || text[1] == 'b'))
    return {std::nullopt, "'" + std::string(text) + "' is not a decimal integer: write the value in decimal"};
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
    if (text[0] == '-' && all_digits(text.substr(1)))
      return {std::nullopt,
              "'" + std::string(text) + "' is negative: the smallest allowed value is " + std::to_string(min)};
    return {std::nullopt, "'" + std::string(text) + "' has a sign: write a plain decimal integer"};
  }
  if (!all_digits(text))
    return {std::nullopt, "'" + std::string(text) + "' is not a decimal integer (digits 0-9 only)"};
  if (auto e = check_number_text(text, text); !e.empty()) return {std::nullopt, std::move(e)};
  auto v = to_u64(text);
  if (!v || *v < min || *v > max)
    return {std::nullopt, "'" + std::string(text) + "' is out of range: allowed " + std::to_string(min) + " to " +
                              std::to_string(max)};
  return {v, {}};
}

Parsed<bool> parse_bool(std::string_view text) {
  if (text == "true") return {true, {}};
  if (text == "false") return {false, {}};
  return {std::nullopt, "'" + std::string(text) +
                            "' is not a boolean: write true or false (yes/no/on/off/y/n and other spellings "
                            "are refused because YAML versions read them differently)"};
}

Parsed<std::chrono::milliseconds> parse_duration(std::string_view text) {
  static constexpr std::string_view kFormat = "write a number and a unit: ms, s, m or h (e.g. 500ms, 5s, 2m)";
  std::size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  const std::string_view number = text.substr(0, i), unit = text.substr(i);
  if (number.empty()) return {std::nullopt, "'" + std::string(text) + "' is not a duration: " + std::string(kFormat)};
  if (unit.empty()) {
    if (number.size() > 1 && number[0] == '0')
      return {std::nullopt,
              "'" + std::string(text) +
                  "' has a leading zero and no unit: durations are decimal "
                  "numbers with a unit (never octal), e.g. " +
                  std::string(number.substr(std::min(number.find_first_not_of('0'), number.size() - 1))) + "s or " +
                  std::string(number.substr(std::min(number.find_first_not_of('0'), number.size() - 1))) + "ms"};
    return {std::nullopt, "'" + std::string(text) + "' has no unit: " + std::string(kFormat)};
  }
  if (auto e = check_number_text(number, text); !e.empty()) return {std::nullopt, std::move(e)};
  std::uint64_t factor = 0;
  if (unit == "ms")
    factor = 1;
  else if (unit == "s")
    factor = 1000;
  else if (unit == "m")
    factor = 60'000;
  else if (unit == "h")
    factor = 3'600'000;
  else
    return {std::nullopt,
            "'" + std::string(text) + "' has an unknown unit '" + std::string(unit) + "': " + std::string(kFormat)};
  auto v = to_u64(number);
  // Bounded far below overflow of milliseconds::rep; no configuration needs more than a year.
  constexpr std::uint64_t kMaxMs = 366ull * 24 * 3'600'000;
  if (!v || *v > kMaxMs / factor) return {std::nullopt, "'" + std::string(text) + "' is too long a duration"};
  return {std::chrono::milliseconds(static_cast<std::int64_t>(*v * factor)), {}};
}

Parsed<std::uint64_t> parse_size(std::string_view text) {
  static constexpr std::string_view kFormat =
      "write plain bytes or a number with B, KiB, MiB or GiB (e.g. 65536, 64KiB, 20MiB)";
  std::size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  const std::string_view number = text.substr(0, i), unit = text.substr(i);
  if (number.empty()) return {std::nullopt, "'" + std::string(text) + "' is not a size: " + std::string(kFormat)};
  if (auto e = check_number_text(number, text); !e.empty()) return {std::nullopt, std::move(e)};
  std::uint64_t factor = 0;
  if (unit.empty() || unit == "B")
    factor = 1;
  else if (unit == "KiB")
    factor = 1ull << 10;
  else if (unit == "MiB")
    factor = 1ull << 20;
  else if (unit == "GiB")
    factor = 1ull << 30;
  else
    return {std::nullopt, "'" + std::string(text) + "' has an unknown size unit '" + std::string(unit) +
                              "': " + std::string(kFormat)};
  auto v = to_u64(number);
  if (!v || *v > std::numeric_limits<std::uint64_t>::max() / factor)
    return {std::nullopt, "'" + std::string(text) + "' is too large"};
  return {*v * factor, {}};
}

std::string format_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string format_size(std::uint64_t bytes) {
  static constexpr std::array<std::pair<std::uint64_t, std::string_view>, 3> kUnits{
      {{1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}}};
  for (auto [f, u] : kUnits)
    if (bytes != 0 && bytes % f == 0) return std::to_string(bytes / f) + std::string(u);
  return std::to_string(bytes);
}

}  // namespace orgproxy::config::detail
