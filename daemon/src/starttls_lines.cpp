// Line reading for the mail dialogues, the SMTP reply filter, and the access-log names of the L4 modes.
#include <algorithm>
#include <cctype>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "starttls.hpp"

namespace orgproxy::daemon {

namespace asio = boost::asio;
using boost::system::error_code;

asio::awaitable<error_code> LineReader::read_line(std::string& line) {
  char chunk[2048];
  for (;;) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      if (nl > max_) co_return asio::error::message_size;
      line.assign(buffer_, 0, nl);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      buffer_.erase(0, nl + 1);
      co_return error_code{};
    }
    if (buffer_.size() > max_) co_return asio::error::message_size;
    auto [ec, n] = co_await read_some_(asio::buffer(chunk, sizeof chunk));
    buffer_.append(chunk, n);
    if (n == 0 && ec) co_return ec;
  }
}

LineReader plain_line_reader(asio::ip::tcp::socket& s) {
  return LineReader([&s](asio::mutable_buffer b) -> asio::awaitable<std::pair<error_code, std::size_t>> {
    auto [ec, n] = co_await s.async_read_some(b, asio::as_tuple(asio::use_awaitable));
    co_return std::pair{ec, n};
  });
}

namespace {

bool starttls_keyword(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  constexpr std::string_view kWord = "STARTTLS";
  return text.size() == kWord.size() && std::equal(text.begin(), text.end(), kWord.begin(), [](char a, char b) {
           return std::toupper(static_cast<unsigned char>(a)) == b;
         });
}

}  // namespace

void SmtpReplyFilter::operator()(std::string_view chunk, bool at_end, std::string& out) {
  partial_.append(chunk);
  std::size_t pos = 0;
  for (std::size_t nl; (nl = partial_.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    const std::string_view line(partial_.data() + pos, nl + 1 - pos);
    const bool more = line.starts_with("250-");
    const bool last = line.starts_with("250 ");
    if ((more || last) && starttls_keyword(line.substr(4))) {
      if (last && !held_.empty()) {
        held_[3] = ' ';  // the line before becomes the reply's last one
        out += held_;
        held_.clear();
      } else if (last) {
        out += line;  // a reply that is only "250 STARTTLS" is not an EHLO reply: left alone
      }
      continue;  // "250-STARTTLS" dropped
    }
    out += held_;
    held_.clear();
    if (more)
      held_.assign(line);
    else
      out += line;
  }
  partial_.erase(0, pos);
  if (partial_.size() > 1024 || at_end) {  // not a reply line we understand, or the end: pass it on
    out += held_;
    out += partial_;
    held_.clear();
    partial_.clear();
  }
  if (at_end) {
    out += held_;
    held_.clear();
  }
}

std::string_view l4_method(config::ListenerMode mode) {
  switch (mode) {
    case config::ListenerMode::tunnel:
      return "TUNNEL";
    case config::ListenerMode::smtp_starttls:
      return "SMTP";
    case config::ListenerMode::imap_starttls:
      return "IMAP";
    case config::ListenerMode::http:
      break;
  }
  return "HTTP";
}

}  // namespace orgproxy::daemon
