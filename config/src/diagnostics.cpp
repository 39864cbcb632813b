#include "diagnostics.hpp"

namespace orgproxy::config {

std::string Diagnostic::str() const {
  return mark.str() + (severity == Severity::error ? ": error: " : ": warning: ") + message;
}

namespace {
std::string join(const std::vector<Diagnostic>& diagnostics) {
  std::string text;
  std::size_t errors = 0;
  for (const auto& d : diagnostics) errors += d.severity == Severity::error;
  text = "configuration has " + std::to_string(errors) + (errors == 1 ? " error" : " errors");
  for (const auto& d : diagnostics) text += "\n" + d.str();
  return text;
}
}  // namespace

ConfigError::ConfigError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error(join(diagnostics)), diagnostics_(std::move(diagnostics)) {}

namespace detail {

void Diagnostics::error(SourceMark mark, std::string message) {
  all_.push_back({Severity::error, std::move(mark), std::move(message)});
  ++errors_;
}

void Diagnostics::warning(SourceMark mark, std::string message) {
  all_.push_back({Severity::warning, std::move(mark), std::move(message)});
}

std::vector<Diagnostic> Diagnostics::warnings() const {
  std::vector<Diagnostic> out;
  for (const auto& d : all_)
    if (d.severity == Severity::warning) out.push_back(d);
  return out;
}

}  // namespace detail
}  // namespace orgproxy::config
