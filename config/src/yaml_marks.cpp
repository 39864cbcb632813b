// Locating YAML syntax errors where the fix goes (see yaml_marks.hpp).
#include "yaml_marks.hpp"

#include <string_view>
#include <vector>

namespace orgproxy::config::detail {

// yaml-cpp marks an unclosed flow collection where it gave up (often the end of the file), far from the
// mistake. The opener still open at that point is where the fix goes: found by a scan that follows quotes
// and comments the way YAML does closely enough for this hint. nullopt when the scan finds none.
std::optional<std::pair<int, int>> unclosed_flow_opener(const std::string& text, int stop_line, int stop_col) {
  std::vector<std::pair<int, int>> open;  // 0-based line, column of each '[' / '{' not yet closed
  int line = 0, col = 0;
  char quote = 0;
  bool comment = false;
  char previous = '\n';
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (line > stop_line || (line == stop_line && col >= stop_col)) break;
    const char c = text[i];
    if (c == '\n') {
      comment = false;  // quoted scalars may span lines; comments end here
      ++line;
      col = 0;
      previous = c;
      continue;
    }
    if (comment) {
      // nothing inside a comment counts
    } else if (quote == '"') {
      if (c == '\\') {
        ++i;
        ++col;
      } else if (c == '"') {
        quote = 0;
      }
    } else if (quote == '\'') {
      if (c == '\'') quote = 0;  // '' inside is an escaped quote: closes and reopens, same effect
    } else if (c == '#' && (previous == ' ' || previous == '\t' || previous == '\n')) {
      comment = true;
    } else if ((c == '"' || c == '\'') && std::string_view(" \t\n[{,:-").find(previous) != std::string_view::npos) {
      quote = c;
    } else if (c == '[' || c == '{') {
      open.emplace_back(line, col);
    } else if ((c == ']' || c == '}') && !open.empty()) {
      open.pop_back();
    }
    previous = c;
    ++col;
  }
  if (open.empty()) return std::nullopt;
  return open.back();
}

// The character at 0-based (line, column) of `text`.
char text_at(const std::string& text, int line, int column) {
  std::size_t i = 0;
  for (int l = 0; l < line && i < text.size(); ++i)
    if (text[i] == '\n') ++l;
  i += static_cast<std::size_t>(column);
  return i < text.size() ? text[i] : '?';
}

}  // namespace orgproxy::config::detail
