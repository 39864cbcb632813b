#include "orgproxy/daemon/starttls_guard.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <utility>

namespace orgproxy::daemon {

namespace {

// A STARTTLS command line is short ("STARTTLS\r\n", "<tag> STARTTLS\r\n"); a longer line is relayed as it
// comes, never held back.
constexpr std::size_t kHeldLine = 64;
constexpr std::size_t kTail = 32;  // enough for "{18446744073709551615+}\r\n"

std::string_view without_eol(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  return line;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
         });
}

std::string_view first_word(std::string_view line) { return line.substr(0, line.find(' ')); }

// The literal announced at the end of an IMAP line (RFC 9051 §4.3: `{n}`, `{n+}`; literal8 `~{n}`):
// its size, and whether it is non-synchronising. False when the line announces none.
bool literal_suffix(std::string_view line, std::uint64_t& size, bool& plus) {
  line = without_eol(line);
  if (line.empty() || line.back() != '}') return false;
  const auto open = line.rfind('{');
  if (open == std::string_view::npos) return false;
  std::string_view digits = line.substr(open + 1, line.size() - open - 2);
  plus = !digits.empty() && digits.back() == '+';
  if (plus) digits.remove_suffix(1);
  if (digits.empty()) return false;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), size);
  return ec == std::errc() && end == digits.data() + digits.size();
}

// An IMAP tag as RFC 9051 §9 allows it (astring-chars but '+'), so an answer never echoes a byte that
// could end or forge a line.
bool imap_tag(std::string_view tag) {
  if (tag.empty()) return false;
  return std::all_of(tag.begin(), tag.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f && c != '+' && c != '(' && c != ')' && c != '{' && c != '%' && c != '*' &&
           c != '"' && c != '\\';
  });
}

void keep_tail(std::string& tail, std::string_view part) {
  tail.append(part);
  if (tail.size() > kTail) tail.erase(0, tail.size() - kTail);
}

}  // namespace

StarttlsGuard::StarttlsGuard(config::ListenerMode mode)
    : mode_(mode), smtp_(mode == config::ListenerMode::smtp_starttls) {
  if (mode != config::ListenerMode::smtp_starttls && mode != config::ListenerMode::imap_starttls) blind_ = true;
}

void StarttlsGuard::go_blind(std::string& up) {
  blind_ = true;
  if (line_held_) up.append(line_);
  line_.clear();
}

void StarttlsGuard::from_client(std::string_view chunk, std::string& up) {
  std::size_t i = 0;
  while (i < chunk.size() && !blind_) {
    switch (client_) {
      case Client::data_pending:
      case Client::literal_wait:
        // The client must wait for DATA's 354 or the literal's `+`: bytes now mean we cannot tell content
        // from commands any more.
        go_blind(up);
        break;
      case Client::skip: {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, chunk.size() - i));
        up.append(chunk.substr(i, n));
        i += n;
        skip_ -= n;
        if (skip_ == 0) {
          client_ = Client::command;
          // BDAT: the next command follows; IMAP: the command line goes on after its literal.
          command_start_ = smtp_;
          line_held_ = smtp_;
        }
        break;
      }
      case Client::data: {
        const std::size_t from = i;
        for (; i < chunk.size() && client_ == Client::data; ++i) {
          const char c = chunk[i];
          switch (data_state_) {
            case 1: data_state_ = c == '.' ? 2 : c == '\r' ? 4 : 0; break;
            case 2: data_state_ = c == '\r' ? 3 : 0; break;
            case 3:
              if (c == '\n') {  // CRLF.CRLF (RFC 5321 §4.1.1.4): the content ends, its reply is due
                ++sent_;
                client_ = Client::command;
                command_start_ = line_held_ = true;
              } else {
                data_state_ = c == '\r' ? 4 : 0;
              }
              break;
            case 4: data_state_ = c == '\n' ? 1 : c == '\r' ? 4 : 0; break;
            default: data_state_ = c == '\r' ? 4 : 0; break;
          }
        }
        up.append(chunk.substr(from, i - from));
        break;
      }
      case Client::command: {
        const std::size_t lf = chunk.find('\n', i);
        const std::size_t end = lf == std::string_view::npos ? chunk.size() : lf + 1;
        const std::string_view part = chunk.substr(i, end - i);
        i = end;
        if (line_held_) {
          line_.append(part);
          if (line_.size() > kHeldLine) {
            up.append(line_);
            keep_tail(tail_, line_);
            line_.clear();
            line_held_ = false;
          }
        } else {
          up.append(part);
          keep_tail(tail_, part);
        }
        if (lf != std::string_view::npos) client_line_end(up);
        break;
      }
    }
  }
  if (blind_ && i < chunk.size()) up.append(chunk.substr(i));
}

void StarttlsGuard::client_line_end(std::string& up) {
  const bool held = line_held_;
  const std::string_view line = without_eol(held ? std::string_view(line_) : std::string_view(tail_));
  const bool start = command_start_;
  bool cut = false;
  if (smtp_) {
    const bool sasl = std::exchange(sasl_next_, false);
    const std::string_view verb = first_word(line);
    if (held && !sasl && iequals(verb, "STARTTLS")) {
      cut = true;
      pending_.push_back({sent_, "503 5.5.1 TLS is active already (RFC 3207)\r\n"});
    } else {
      ++sent_;
      if (held && !sasl && iequals(line, "DATA")) {
        data_seq_ = sent_;
        client_ = Client::data_pending;
      } else if (held && !sasl && iequals(verb, "BDAT")) {
        std::string_view size = line.substr(std::min(line.size(), verb.size() + 1));
        size = first_word(size);
        auto [p, ec] = std::from_chars(size.data(), size.data() + size.size(), skip_);
        if (ec != std::errc() || p != size.data() + size.size()) {
          if (held) up.append(line_);
          line_.clear();
          tail_.clear();
          blind_ = true;
          return;
        }
        if (skip_ > 0) client_ = Client::skip;
      }
    }
  } else {
    const std::string_view tag = first_word(line);
    if (held && start && line.size() > tag.size() && iequals(line.substr(tag.size() + 1), "STARTTLS") &&
        imap_tag(tag)) {
      cut = true;
      pending_.push_back({sent_, std::string(tag) + " BAD [CLIENTBUG] TLS is active already (RFC 9051 6.2.1)\r\n"});
    } else {
      // A command starts with "<tag> "; AUTHENTICATE responses and IDLE's DONE have no space and no answer
      // of their own.
      if (start && line.find(' ') != std::string_view::npos) ++sent_;
      std::uint64_t size = 0;
      bool plus = false;
      if (literal_suffix(line, size, plus)) {
        skip_ = size;
        client_ = plus ? Client::skip : Client::literal_wait;
        if (plus && size == 0) {
          client_ = Client::command;
          imap_literal_continues_ = true;
        }
      }
    }
  }
  if (cut) {
    ++cut_;
  } else if (held) {
    up.append(line_);
  }
  line_.clear();
  tail_.clear();
  // A new command starts on the next line, unless a literal follows (IMAP: the command goes on after it).
  const bool literal_follows = !smtp_ && client_ != Client::command;
  line_held_ = command_start_ = !literal_follows && !imap_literal_continues_;
  imap_literal_continues_ = false;
}

void StarttlsGuard::from_upstream(std::string_view chunk, std::string& out) {
  if (blind_) {
    emit_due(out, true);
    out.append(chunk);
    return;
  }
  if (upstream_at_boundary()) emit_due(out, true);
  std::size_t i = 0;
  while (i < chunk.size()) {
    if (reply_skip_ > 0) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(reply_skip_, chunk.size() - i));
      out.append(chunk.substr(i, n));
      i += n;
      reply_skip_ -= n;
      if (reply_skip_ == 0) reply_continues_ = true;
      continue;
    }
    const std::size_t lf = chunk.find('\n', i);
    const std::size_t end = lf == std::string_view::npos ? chunk.size() : lf + 1;
    const std::string_view part = chunk.substr(i, end - i);
    out.append(part);
    i = end;
    reply_mid_ = true;
    if (reply_.size() < kHeldLine) reply_.append(part.substr(0, kHeldLine - reply_.size()));
    keep_tail(reply_tail_, part);
    if (lf == std::string_view::npos) continue;
    upstream_line_end();
    reply_.clear();
    reply_tail_.clear();
    reply_mid_ = false;
    if (blind_) {
      out.append(chunk.substr(i));
      emit_due(out, true);
      return;
    }
    if (upstream_at_boundary()) emit_due(out, true);
  }
}

void StarttlsGuard::upstream_line_end() {
  const std::string_view line = without_eol(reply_);
  if (smtp_) {
    unsigned code = 0;
    auto [p, ec] = std::from_chars(line.data(), line.data() + std::min<std::size_t>(3, line.size()), code);
    if (ec != std::errc() || p != line.data() + 3 || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      blind_ = true;  // not an SMTP reply line: the count cannot be trusted
      return;
    }
    reply_more_ = line.size() > 3 && line[3] == '-';
    if (reply_more_) return;
    ++answered_;
    sasl_next_ = code == 334;
    if (client_ == Client::data_pending && answered_ == data_seq_) {
      client_ = code == 354 ? Client::data : Client::command;
      data_state_ = 1;
      command_start_ = line_held_ = true;
    }
    return;
  }
  if (!reply_continues_) {
    const std::string_view token = first_word(line);
    if (token == "+") {
      if (client_ == Client::literal_wait) client_ = skip_ > 0 ? Client::skip : Client::command;
    } else if (token != "*") {
      ++answered_;
    }
  }
  std::uint64_t size = 0;
  bool plus = false;
  if (literal_suffix(reply_tail_, size, plus)) {
    reply_skip_ = size;
    reply_continues_ = true;
  } else {
    reply_continues_ = false;
  }
}

void StarttlsGuard::emit_due(std::string& out, bool at_boundary) {
  while (!pending_.empty() && (blind_ || (at_boundary && pending_.front().after <= answered_))) {
    out.append(pending_.front().text);
    pending_.pop_front();
  }
}

std::string StarttlsGuard::take_due() {
  std::string out;
  emit_due(out, upstream_at_boundary());
  return out;
}

}  // namespace orgproxy::daemon
