// Internal: better positions for YAML syntax errors than the one yaml-cpp reports.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace orgproxy::config::detail {

/// The 0-based (line, column) of the flow collection ('[' or '{') still open at yaml-cpp's error mark
/// (0-based `stop_line`, `stop_col`): where the fix goes, whereas yaml-cpp marks where it gave up, often the
/// end of the file. nullopt when the scan finds none. Quotes and comments are followed as YAML 1.2 §7
/// writes them, closely enough for a hint.
std::optional<std::pair<int, int>> unclosed_flow_opener(const std::string& text, int stop_line, int stop_col);

/// The character at 0-based (line, column) of `text`, or '?' past its end.
char text_at(const std::string& text, int line, int column);

}  // namespace orgproxy::config::detail
