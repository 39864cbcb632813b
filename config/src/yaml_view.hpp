// Typed, located access to YAML mappings. Every value is read from its exact source text
// (YAML::Node::Scalar()), never through yaml-cpp's conversions; every problem becomes a diagnostic at
// file:line:col and reading continues, so that one load reports all errors.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "diagnostics.hpp"

namespace orgproxy::config::detail {

/// The file a node comes from: its name in marks and the directory relative paths are resolved against.
struct FileCtx {
  std::string name;
  std::filesystem::path dir;
};

/// 1-based mark of a node (yaml-cpp marks are 0-based); line 0 when the node has none.
SourceMark mark_of(const YAML::Node& node, const FileCtx& file);

/// "a mapping", "a sequence", "a scalar" or "nothing", for "expected X, found Y" messages.
std::string_view kind_of(const YAML::Node& node);

/// The text of `map`'s scalar child `key`, or "" (no throw when `map` is not a mapping or lacks the key:
/// yaml-cpp's const operator[] yields an invalid node that throws on use).
std::string child_text(const YAML::Node& map, std::string_view key);

/// The candidate closest to `word` by edit distance (optimal string alignment), when close enough to be a
/// plausible typo; "" otherwise.
std::string closest(std::string_view word, std::span<const std::string_view> candidates);

/// " (did you mean 'x'?)" when a candidate is close, else " (allowed: a, b, c)".
std::string hint(std::string_view word, std::span<const std::string_view> candidates);

/// `text` as a path: absolute paths unchanged, relative ones joined to the file's directory.
std::string resolve_path(std::string_view text, const FileCtx& file);

/// A scalar's exact text and where it was written.
struct Text {
  std::string value;
  SourceMark mark;
};

/// One key: value pair of a mapping.
struct Field {
  YAML::Node key;
  YAML::Node value;
};

/// A mapping being read. Construction checks the node is a mapping and reports unknown keys (with a
/// suggestion), duplicate keys and non-scalar keys. Readers report wrong types and bad values and return
/// nullopt; missing optional keys return nullopt silently.
class MapView {
 public:
  /// `what` names the mapping in messages ("listener 'ris'"); `where` locates it when `node` is null.
  MapView(const YAML::Node& node, SourceMark where, const FileCtx& file, Diagnostics& diags, std::string what,
          std::span<const std::string_view> known);

  bool valid() const { return valid_; }
  const std::string& what() const { return what_; }
  const FileCtx& file() const { return *file_; }
  Diagnostics& diags() const { return *diags_; }
  SourceMark mark() const { return where_; }

  /// The field `key`, or nullptr.
  const Field* field(std::string_view key) const;
  /// Where the value of `key` was written (the key itself when the value is empty).
  SourceMark value_mark(std::string_view key) const;
  /// Reports `message` at the value of `key`, prefixed by what and key.
  void error_at(std::string_view key, const std::string& message) const;
  void warning_at(std::string_view key, const std::string& message) const;

  /// A non-empty scalar (empty allowed when allow_empty). Required and absent → "missing required key".
  std::optional<Text> text(std::string_view key, bool required = false, bool allow_empty = false) const;
  std::optional<std::string> string(std::string_view key, bool required = false, bool allow_empty = false) const;
  std::optional<std::uint64_t> integer(std::string_view key, std::uint64_t min, std::uint64_t max) const;
  std::optional<bool> boolean(std::string_view key) const;
  std::optional<std::chrono::milliseconds> duration(std::string_view key, std::chrono::milliseconds min,
                                                    std::chrono::milliseconds max) const;
  std::optional<std::uint64_t> size(std::string_view key, std::uint64_t min, std::uint64_t max) const;
  /// A file path, resolved against the directory of this file.
  std::optional<std::string> path(std::string_view key, bool required = false) const;
  /// A list of non-empty scalars; a single scalar is a list of one. Absent → nullopt silently.
  std::optional<std::vector<Text>> list(std::string_view key) const;

  /// One of a fixed set of spellings.
  template <class E>
  std::optional<E> choice(std::string_view key, std::span<const std::pair<std::string_view, E>> table,
                          bool required = false) const {
    auto t = text(key, required);
    if (!t) return std::nullopt;
    std::vector<std::string_view> names;
    for (const auto& [name, value] : table) {
      if (name == t->value) return value;
      names.push_back(name);
    }
    error_at(key, "'" + t->value + "' is not allowed" + hint(t->value, names));
    return std::nullopt;
  }

  /// All fields in source order (duplicates included; they were reported).
  const std::vector<Field>& fields() const { return fields_; }

 private:
  const FileCtx* file_;
  Diagnostics* diags_;
  std::string what_;
  SourceMark where_;
  bool valid_ = false;
  std::vector<Field> fields_;
};

/// Checks `node` is a sequence (reports "expected a sequence" otherwise); a null node is an empty list.
bool expect_sequence(const YAML::Node& node, SourceMark where, const FileCtx& file, Diagnostics& diags,
                     const std::string& what);

}  // namespace orgproxy::config::detail
