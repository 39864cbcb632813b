// load_config: reads the main file and its includes, then checks what spans files (references,
// duplicates, listener rules) and builds the immutable snapshot.
#include <glob.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "net.hpp"
#include "orgproxy/config/identifiers.hpp"
#include "orgproxy/config/load.hpp"
#include "sections.hpp"
#include "yaml_marks.hpp"

namespace orgproxy::config {
namespace detail {
namespace {

// Configuration files are small; anything larger is a mistake (a log or a disk image named by a glob).
constexpr std::uintmax_t kMaxFileBytes = 16u << 20;

// RAII over glob(3)'s result.
class GlobResult {
 public:
  explicit GlobResult(const std::string& pattern) { rc_ = ::glob(pattern.c_str(), 0, nullptr, &g_); }
  ~GlobResult() { ::globfree(&g_); }
  GlobResult(const GlobResult&) = delete;
  GlobResult& operator=(const GlobResult&) = delete;
  int rc() const { return rc_; }
  std::vector<std::string> paths() const {
    std::vector<std::string> out;
    if (rc_ == 0)
      for (std::size_t i = 0; i < g_.gl_pathc; ++i) out.emplace_back(g_.gl_pathv[i]);
    return out;  // glob(3) sorts them, so include order is stable
  }

 private:
  glob_t g_{};
  int rc_ = 0;
};

bool is_glob(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

class Loader {
 public:
  void load_root_file(const std::filesystem::path& path) {
    const std::string name = path.string();
    root_name_ = name;
    // Relative paths in the file resolve against its directory made absolute now, so that they do not
    // depend on the daemon's working directory later (systemd starts it in /).
    FileCtx file{name, absolute_dir(path.parent_path())};
    auto text = read_file(path, SourceMark{name, 0, 0});
    if (!text) return;
    stack_.push_back(canonical(path));
    process_text(*text, file, true);
    stack_.pop_back();
  }

  void load_root_text(const std::string& yaml, const std::string& name, const std::filesystem::path& base_dir) {
    root_name_ = name;
    process_text(yaml, FileCtx{name, absolute_dir(base_dir)}, true);
  }

  LoadResult finish();

 private:
  static std::filesystem::path absolute_dir(const std::filesystem::path& dir) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(dir.empty() ? std::filesystem::path(".") : dir, ec);
    return ec ? dir : abs.lexically_normal();
  }

  static std::string canonical(const std::filesystem::path& p) {
    std::error_code ec;
    auto c = std::filesystem::weakly_canonical(p, ec);
    return ec ? p.lexically_normal().string() : c.string();
  }

  std::optional<std::string> read_file(const std::filesystem::path& path, const SourceMark& from) {
    const std::string name = path.string();
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status)) {
      state_.diags.error(
          from.line ? from : SourceMark{name, 0, 0},
          "cannot read configuration file '" + name + "': " + (ec ? ec.message() : std::string("no such file")));
      return std::nullopt;
    }
    if (!std::filesystem::is_regular_file(status)) {
      state_.diags.error(from.line ? from : SourceMark{name, 0, 0}, "'" + name + "' is not a regular file");
      return std::nullopt;
    }
    if (std::filesystem::file_size(path, ec) > kMaxFileBytes) {
      state_.diags.error(from.line ? from : SourceMark{name, 0, 0}, "'" + name + "' is larger than 16 MiB");
      return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      state_.diags.error(from.line ? from : SourceMark{name, 0, 0},
                         "cannot read configuration file '" + name + "': " + std::strerror(errno));
      return std::nullopt;
    }
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  void process_text(const std::string& text, const FileCtx& file, bool is_root) {
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAll(text);
    } catch (const YAML::Exception& e) {
      SourceMark at{file.name, e.mark.is_null() ? 0 : e.mark.line + 1, e.mark.is_null() ? 0 : e.mark.column + 1};
      std::string message = "YAML syntax error: " + e.msg;
      if (!e.mark.is_null() && e.msg.find("flow not found") != std::string::npos) {
        if (auto opener = unclosed_flow_opener(text, e.mark.line, e.mark.column)) {
          message += ": the '" + std::string(1, text_at(text, opener->first, opener->second)) +
                     "' opened here is never closed (the parser gave up at line " + std::to_string(at.line) +
                     ", column " + std::to_string(at.column) + ")";
          at.line = opener->first + 1;
          at.column = opener->second + 1;
        }
      }
      state_.diags.error(at, message);
      return;
    }
    if (docs.size() > 1) {
      state_.diags.error(mark_of(docs[1], file),
                         "more than one YAML document ('---'): put the whole "
                         "configuration in one document");
      return;
    }
    if (is_root) root_read_ = true;
    process(docs.empty() ? YAML::Node() : docs.front(), file, is_root);
  }

  void process(const YAML::Node& root, const FileCtx& file, bool is_root) {
    MapView top(root, SourceMark{file.name, 1, 1}, file, state_.diags, is_root ? "configuration" : "included file",
                root_keys());
    if (!top.valid()) return;
    if (is_root) {
      parse_settings(top, state_);
      parse_pkcs11(top, state_);
      parse_listeners(top, state_);
      parse_tenant_groups(top, state_);
      parse_clients(top, state_);
      parse_admin(top, state_);
      parse_logging(top, state_);
      parse_crl_files(top, state_);
      parse_directory(top, state_);
    } else {
      const auto allowed = include_keys();
      for (const Field& f : top.fields())
        if (std::find(allowed.begin(), allowed.end(), f.key.Scalar()) == allowed.end())
          state_.diags.error(mark_of(f.key, file),
                             "'" + f.key.Scalar() + "' is only allowed in the main configuration file (" + root_name_ +
                                 "); an included file holds only tenants, upstreams, routes and "
                                 "include");
    }
    parse_upstreams(top, state_);
    parse_routes(top, state_);
    parse_tenants(top, state_);
    process_includes(top);
  }

  void process_includes(const MapView& top) {
    const Field* f = top.field("include");
    if (!f) return;
    const FileCtx& file = top.file();
    if (!expect_sequence(f->value, mark_of(f->key, file), file, state_.diags, "include")) return;
    for (const YAML::Node& item : f->value) {
      const SourceMark at = mark_of(item, file);
      if (!item.IsScalar() || item.Scalar().empty()) {
        state_.diags.error(at, "include: expected a file name or glob pattern, found " + std::string(kind_of(item)));
        continue;
      }
      const std::string pattern = resolve_path(item.Scalar(), file);
      std::vector<std::string> paths;
      if (is_glob(item.Scalar())) {
        GlobResult g(pattern);
        if (g.rc() == GLOB_NOMATCH) {
          state_.diags.warning(at, "include: '" + item.Scalar() + "' matches no file");
          continue;
        }
        if (g.rc() != 0) {
          state_.diags.error(at, "include: cannot expand '" + item.Scalar() + "' (glob error)");
          continue;
        }
        paths = g.paths();
      } else {
        paths.push_back(pattern);
      }
      for (const auto& p : paths) include_one(p, at);
    }
  }

  void include_one(const std::string& path, const SourceMark& at) {
    const std::string key = canonical(path);
    if (std::find(stack_.begin(), stack_.end(), key) != stack_.end()) {
      std::string chain;
      for (const auto& s : stack_) chain += s + " → ";
      state_.diags.error(at, "include cycle: " + chain + key);
      return;
    }
    if (auto it = included_.find(key); it != included_.end()) {
      state_.diags.error(at, "include: '" + path + "' is already included at " + it->second.str());
      return;
    }
    included_.emplace(key, at);
    auto text = read_file(path, at);
    if (!text) return;
    const std::filesystem::path p(path);
    stack_.push_back(key);
    process_text(*text, FileCtx{path, p.parent_path()}, false);
    stack_.pop_back();
  }

 public:
  ParseState state_;

 private:
  std::string root_name_;
  bool root_read_ = false;  ///< the main file was read and parsed (whole-config checks make sense)
  std::vector<std::string> stack_;
  std::map<std::string, SourceMark> included_;
};

void check_references(ParseState& s) {
  std::vector<std::string_view> upstream_names, tenant_ids;
  for (const auto& [name, u] : s.config.upstreams) upstream_names.push_back(name);
  for (const auto& t : s.config.tenants) tenant_ids.push_back(t.id);
  // A group may list every site of the group: thousands of references, each looked up once.
  const std::unordered_set<std::string_view> tenant_set(tenant_ids.begin(), tenant_ids.end());
  // A "did you mean" scans every id; past a few dozen unknown ids the file is wrong wholesale and the
  // suggestions would cost more than they help.
  constexpr std::size_t kMaxSuggestions = 32;
  std::size_t suggestions = 0;
  for (const Reference& r : s.references) {
    if (r.kind == Reference::Kind::upstream) {
      if (!s.config.upstreams.count(r.name))
        s.diags.error(r.mark, r.what + ": no upstream named '" + r.name + "'" +
                                  (upstream_names.empty() ? std::string(" (no upstream is configured)")
                                                          : hint(r.name, upstream_names)));
    } else if (r.kind == Reference::Kind::group) {
      if (!s.config.tenant_groups.count(r.name)) {
        std::vector<std::string_view> groups;
        for (const auto& [name, members] : s.config.tenant_groups) groups.push_back(name);
        s.diags.error(r.mark,
                      r.what + ": no tenant group named '" + r.name + "'" +
                          (groups.empty() ? std::string(" (no tenant_groups are configured)") : hint(r.name, groups)));
      }
    } else if (!tenant_set.count(r.name)) {
      // Where an id is written, a bare SIRET or RPPS gets the same full-form message as in `tenants`.
      const StructureIdCheck check = check_structure_id(r.name);
      std::string why;
      if (tenant_ids.empty())
        why = " (no tenant is configured)";
      else if (suggestions++ < kMaxSuggestions)
        if (auto c = closest(r.name, tenant_ids); !c.empty()) why = " (did you mean '" + c + "'?)";
      if (!check.ok) why += "; " + check.error;
      s.diags.error(r.mark, r.what + ": no tenant with id '" + r.name + "'" + why);
    }
  }
}

// HTTP routes need `url` upstreams, L4 listeners `address` ones (unknown names are reported elsewhere).
void check_upstream_kinds(ParseState& s) {
  for (const Route& r : s.config.routes)
    if (const Upstream* u = s.config.find_upstream(r.upstream); u && !u->address.empty())
      s.diags.error(r.mark, "route '" + r.prefix + "': upstream '" + u->name +
                                "' is an L4 upstream (address); routes need an upstream with an https url");
  for (const Listener& l : s.config.listeners) {
    if (l.mode == ListenerMode::http) continue;
    if (const Upstream* u = s.config.find_upstream(l.upstream); u && u->address.empty())
      s.diags.error(l.mark, "listener '" + l.name + "': upstream '" + u->name + "' has a url (HTTP); a " +
                                std::string(to_string(l.mode)) + " listener needs an upstream with address: host:port");
  }
}

void check_listeners(ParseState& s, const std::string& root_name, bool root_read) {
  auto& listeners = s.config.listeners;
  if (listeners.empty() && root_read)
    s.diags.error(SourceMark{root_name, 0, 0}, "no listener is configured ('listeners:' with at least one entry)");
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    const Listener& l = listeners[i];
    for (std::size_t j = 0; j < i; ++j)
      if (l.port != 0 && listeners[j].port == l.port && listeners[j].address == l.address)
        s.diags.error(l.mark, "listener '" + l.name + "': " + l.address + " port " + std::to_string(l.port) +
                                  " is already used by listener '" + listeners[j].name + "' at " +
                                  listeners[j].mark.str());
    // DESIGN.md "Client": default deny; only a loopback listener may run without client rules.
    if (!is_loopback(l.address) && s.config.clients.empty())
      s.diags.error(l.mark, "listener '" + l.name + "' binds " + l.address +
                                ", which is not loopback: client rules are required (a 'clients:' section saying "
                                "who may act for which tenants) before orgproxy listens beyond this host");
  }
}

// Client groups become tenant ids (the snapshot answers allows_tenant without a group lookup); warnings
// for rules that can never match.
void resolve_clients(ParseState& s) {
  const bool client_certs_requested =
      std::any_of(s.config.listeners.begin(), s.config.listeners.end(),
                  [](const Listener& l) { return l.tls && !l.tls->client_ca_file.empty(); });
  for (Client& c : s.config.clients) {
    for (const auto& g : c.groups)
      if (auto it = s.config.tenant_groups.find(g); it != s.config.tenant_groups.end())
        for (const auto& id : it->second)
          if (std::find(c.tenants.begin(), c.tenants.end(), id) == c.tenants.end()) c.tenants.push_back(id);
    if ((!c.cert_sha256.empty() || !c.cert_subjects.empty()) && !client_certs_requested)
      s.diags.warning(c.mark, "client '" + c.name +
                                  "': matches on a client certificate, but no listener has tls "
                                  "with client_ca, so none is ever received");
  }
}

// One warning, not one per key: hundreds of sites share the same missing setting.
void check_pin_source(ParseState& s) {
  if (!s.config.pkcs11.pin_file.empty()) return;
  for (const Tenant& t : s.config.tenants)
    for (const auto& [purpose, refs] : t.identities)
      for (const IdentityRef& ref : refs)
        if (ref.key.starts_with("pkcs11:") && ref.key.find("pin-source=") == std::string::npos &&
            ref.key.find("pin-value=") == std::string::npos) {
          s.diags.warning(ref.mark, "tenant '" + t.id +
                                        "': key URIs give no PIN and pkcs11.pin_file is not set: "
                                        "logging in to the token will fail unless it needs no login");
          return;
        }
}

void check_admin(ParseState& s) {
  if (!s.config.admin || s.config.admin->port == 0) return;
  for (const Listener& l : s.config.listeners)
    if (l.port == s.config.admin->port && l.address == s.config.admin->address)
      s.diags.error(s.config.admin->mark, "admin: " + l.address + " port " + std::to_string(l.port) +
                                              " is already used by listener '" + l.name + "' at " + l.mark.str());
}

LoadResult Loader::finish() {
  auto& s = state_;
  for (auto& u : s.upstreams) {
    auto [it, inserted] = s.config.upstreams.emplace(u.name, u);
    if (!inserted)
      s.diags.error(u.mark, "upstream '" + u.name + "' is defined twice: here and at " + it->second.mark.str());
  }
  std::map<std::string_view, SourceMark> ids;
  for (const IdMark& t : s.tenant_ids) {
    if (t.id.empty()) continue;
    auto [it, inserted] = ids.emplace(t.id, t.mark);
    if (!inserted) s.diags.error(t.mark, "tenant id '" + t.id + "' is defined twice: here and at " + it->second.str());
  }
  check_references(s);
  check_upstream_kinds(s);
  check_listeners(s, root_name_, root_read_);
  check_admin(s);
  check_pin_source(s);
  resolve_clients(s);
  if (s.diags.has_errors()) throw ConfigError(s.diags.all());
  s.config.source_file = root_name_;
  s.config.build_index();
  return LoadResult{std::make_shared<const Config>(std::move(s.config)), s.diags.warnings()};
}

template <class F>
LoadResult guarded(const std::string& name, F&& body) {
  try {
    return body();
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    // Contract: bad input only ever surfaces as ConfigError.
    throw ConfigError({Diagnostic{Severity::error, SourceMark{name, 0, 0},
                                  std::string("cannot load the configuration: ") + e.what()}});
  }
}

}  // namespace
}  // namespace detail

LoadResult load_config(const std::filesystem::path& path) {
  return detail::guarded(path.string(), [&] {
    detail::Loader loader;
    loader.load_root_file(path);
    return loader.finish();
  });
}

LoadResult load_config_text(const std::string& yaml, const std::string& name, const std::filesystem::path& base_dir) {
  return detail::guarded(name, [&] {
    detail::Loader loader;
    loader.load_root_text(yaml, name, base_dir);
    return loader.finish();
  });
}

}  // namespace orgproxy::config
