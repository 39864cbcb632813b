// Collects every diagnostic of one load, so that all errors are reported at once.
#pragma once

#include <string>
#include <vector>

#include "orgproxy/config/load.hpp"

namespace orgproxy::config::detail {

class Diagnostics {
 public:
  void error(SourceMark mark, std::string message);
  void warning(SourceMark mark, std::string message);
  bool has_errors() const { return errors_ > 0; }
  std::size_t error_count() const { return errors_; }
  /// Every diagnostic, in the order found.
  const std::vector<Diagnostic>& all() const { return all_; }
  std::vector<Diagnostic> warnings() const;

 private:
  std::vector<Diagnostic> all_;
  std::size_t errors_ = 0;
};

}  // namespace orgproxy::config::detail
