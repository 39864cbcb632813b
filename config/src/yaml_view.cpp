#include "yaml_view.hpp"

#include <algorithm>
#include <cctype>

#include "scalars.hpp"

namespace orgproxy::config::detail {

SourceMark mark_of(const YAML::Node& node, const FileCtx& file) {
  const YAML::Mark m = node.Mark();
  if (m.is_null() || m.line < 0) return {file.name, 0, 0};
  return {file.name, m.line + 1, m.column + 1};
}

std::string_view kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Scalar:
      return "a scalar";
    default:
      return "nothing";
  }
}

std::string child_text(const YAML::Node& map, std::string_view key) {
  if (!map.IsMap()) return {};
  for (auto it = map.begin(); it != map.end(); ++it)
    if (it->first.IsScalar() && it->first.Scalar() == key) return it->second.IsScalar() ? it->second.Scalar() : "";
  return {};
}

namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment: insertions, deletions, substitutions and adjacent transpositions.
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string closest(std::string_view word, std::span<const std::string_view> candidates) {
  std::string best;
  std::size_t best_distance = 0;
  const std::string w = lower(word);
  for (auto c : candidates) {
    const std::size_t dist = edit_distance(w, lower(c));
    // A typo is a few edits away; a third of the word bounds it so short words do not match everything.
    const std::size_t limit = std::max<std::size_t>(1, std::min<std::size_t>(3, (c.size() + 2) / 3));
    if (dist <= limit && (best.empty() || dist < best_distance)) {
      best = std::string(c);
      best_distance = dist;
    }
  }
  return best;
}

std::string hint(std::string_view word, std::span<const std::string_view> candidates) {
  if (auto c = closest(word, candidates); !c.empty()) return " (did you mean '" + c + "'?)";
  std::string list;
  for (auto c : candidates) list += (list.empty() ? "" : ", ") + std::string(c);
  return " (allowed: " + list + ")";
}

std::string resolve_path(std::string_view text, const FileCtx& file) {
  std::filesystem::path p{std::string(text)};
  if (p.is_absolute()) return p.lexically_normal().string();
  return (file.dir / p).lexically_normal().string();
}

MapView::MapView(const YAML::Node& node, SourceMark where, const FileCtx& file, Diagnostics& diags, std::string what,
                 std::span<const std::string_view> known)
    : file_(&file), diags_(&diags), what_(std::move(what)), where_(std::move(where)) {
  if (!node.IsDefined() || node.IsNull()) {
    // An empty section (`settings:` with nothing under it) reads as an empty mapping.
    valid_ = true;
    return;
  }
  if (!node.IsMap()) {
    diags.error(mark_of(node, file),
                what_ + ": expected a mapping (key: value lines), found " + std::string(kind_of(node)));
    return;
  }
  valid_ = true;
  where_ = mark_of(node, file);
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      diags.error(mark_of(key, file), what_ + ": keys must be plain words, found " + std::string(kind_of(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      diags.error(mark_of(key, file), what_ + ": unknown key '" + name + "'" + hint(name, known));
      continue;
    }
    if (const Field* first = field(name)) {
      diags.error(mark_of(key, file),
                  what_ + ": duplicate key '" + name + "' (first written at " + mark_of(first->key, file).str() + ")");
      continue;
    }
    fields_.push_back({key, it->second});
  }
}

const Field* MapView::field(std::string_view key) const {
  for (const auto& f : fields_)
    if (f.key.Scalar() == key) return &f;
  return nullptr;
}

SourceMark MapView::value_mark(std::string_view key) const {
  const Field* f = field(key);
  if (!f) return where_;
  if (f->value.IsNull()) return mark_of(f->key, *file_);
  return mark_of(f->value, *file_);
}

void MapView::error_at(std::string_view key, const std::string& message) const {
  diags_->error(value_mark(key), what_ + ": " + std::string(key) + ": " + message);
}

void MapView::warning_at(std::string_view key, const std::string& message) const {
  diags_->warning(value_mark(key), what_ + ": " + std::string(key) + ": " + message);
}

std::optional<Text> MapView::text(std::string_view key, bool required, bool allow_empty) const {
  const Field* f = field(key);
  if (!f) {
    if (required && valid_) diags_->error(where_, what_ + ": missing required key '" + std::string(key) + "'");
    return std::nullopt;
  }
  if (f->value.IsNull()) {
    error_at(key, "has no value");
    return std::nullopt;
  }
  if (!f->value.IsScalar()) {
    error_at(key, "expected a single value, found " + std::string(kind_of(f->value)));
    return std::nullopt;
  }
  if (f->value.Scalar().empty() && !allow_empty) {
    error_at(key, "is empty");
    return std::nullopt;
  }
  return Text{f->value.Scalar(), mark_of(f->value, *file_)};
}

std::optional<std::string> MapView::string(std::string_view key, bool required, bool allow_empty) const {
  auto t = text(key, required, allow_empty);
  if (!t) return std::nullopt;
  return std::move(t->value);
}

std::optional<std::uint64_t> MapView::integer(std::string_view key, std::uint64_t min, std::uint64_t max) const {
  auto t = text(key);
  if (!t) return std::nullopt;
  auto p = parse_decimal(t->value, min, max);
  if (!p.value) error_at(key, p.error);
  return p.value;
}

std::optional<bool> MapView::boolean(std::string_view key) const {
  auto t = text(key);
  if (!t) return std::nullopt;
  auto p = parse_bool(t->value);
  if (!p.value) error_at(key, p.error);
  return p.value;
}

std::optional<std::chrono::milliseconds> MapView::duration(std::string_view key, std::chrono::milliseconds min,
                                                           std::chrono::milliseconds max) const {
  auto t = text(key);
  if (!t) return std::nullopt;
  auto p = parse_duration(t->value);
  if (!p.value) {
    error_at(key, p.error);
    return std::nullopt;
  }
  if (*p.value < min || *p.value > max) {
    error_at(key,
             "'" + t->value + "' is out of range: allowed " + format_duration(min) + " to " + format_duration(max));
    return std::nullopt;
  }
  return p.value;
}

std::optional<std::uint64_t> MapView::size(std::string_view key, std::uint64_t min, std::uint64_t max) const {
  auto t = text(key);
  if (!t) return std::nullopt;
  auto p = parse_size(t->value);
  if (!p.value) {
    error_at(key, p.error);
    return std::nullopt;
  }
  if (*p.value < min || *p.value > max) {
    error_at(key, "'" + t->value + "' is out of range: allowed " + format_size(min) + " to " + format_size(max));
    return std::nullopt;
  }
  return p.value;
}

std::optional<std::string> MapView::path(std::string_view key, bool required) const {
  auto t = text(key, required);
  if (!t) return std::nullopt;
  if (t->value.find('\0') != std::string::npos) {
    error_at(key, "contains a NUL character");
    return std::nullopt;
  }
  return resolve_path(t->value, *file_);
}

std::optional<std::vector<Text>> MapView::list(std::string_view key) const {
  const Field* f = field(key);
  if (!f) return std::nullopt;
  if (f->value.IsScalar()) {
    if (auto t = text(key)) return std::vector<Text>{std::move(*t)};
    return std::nullopt;
  }
  if (!expect_sequence(f->value, mark_of(f->key, *file_), *file_, *diags_, what_ + ": " + std::string(key)))
    return std::nullopt;
  std::vector<Text> out;
  bool ok = true;
  for (const YAML::Node& item : f->value) {
    if (!item.IsScalar() || item.Scalar().empty()) {
      diags_->error(mark_of(item, *file_), what_ + ": " + std::string(key) + ": expected a non-empty value, found " +
                                               std::string(item.IsScalar() ? "an empty one" : kind_of(item)));
      ok = false;
      continue;
    }
    out.push_back({item.Scalar(), mark_of(item, *file_)});
  }
  if (!ok) return std::nullopt;
  return out;
}

bool expect_sequence(const YAML::Node& node, SourceMark where, const FileCtx& file, Diagnostics& diags,
                     const std::string& what) {
  if (node.IsSequence() || node.IsNull()) return true;
  diags.error(node.IsDefined() ? mark_of(node, file) : where,
              what + ": expected a sequence (a list of '- ' items), found " + std::string(kind_of(node)));
  return false;
}

}  // namespace orgproxy::config::detail
