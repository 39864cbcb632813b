// Finding the SOAP envelope in a request body prefix: plain SOAP 1.2, MTOM/XOP multipart root part
// (RFC 2387, RFC 2046 §5.1.1), and the chunked transfer coding undone on a prefix (RFC 9112 §7.1).
#include <boost/beast/core/string.hpp>

#include <cctype>
#include <optional>

#include "orgproxy/daemon/vihf.hpp"

namespace orgproxy::daemon {

namespace {

std::string_view trim(std::string_view s) {
  constexpr std::string_view ws = " \t";
  auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// One parameter of a Content-Type value (RFC 9110 §5.6.6), quoted-string unescaped; nullopt when absent.
std::optional<std::string> media_param(std::string_view value, std::string_view wanted) {
  std::size_t i = value.find(';');
  while (i != std::string_view::npos && i < value.size()) {
    ++i;
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    std::size_t eq = value.find('=', i);
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view name = trim(value.substr(i, eq - i));
    std::size_t j = eq + 1;
    std::string v;
    if (j < value.size() && value[j] == '"') {
      ++j;
      while (j < value.size() && value[j] != '"') {
        if (value[j] == '\\' && j + 1 < value.size()) ++j;
        v += value[j++];
      }
      if (j < value.size()) ++j;  // closing quote
      i = value.find(';', j);
    } else {
      std::size_t end = value.find(';', j);
      v = std::string(trim(value.substr(j, end == std::string_view::npos ? std::string_view::npos : end - j)));
      i = end;
    }
    if (boost::beast::iequals(name, wanted)) return v;
  }
  return std::nullopt;
}

std::string_view media_type(std::string_view value) { return trim(value.substr(0, value.find(';'))); }

std::string_view strip_angles(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '<' && s.back() == '>') return s.substr(1, s.size() - 2);
  return s;
}

// The value of header `name` in a part's header block (CRLF-separated lines), or "".
std::string_view part_header(std::string_view block, std::string_view name) {
  std::size_t pos = 0;
  while (pos < block.size()) {
    std::size_t eol = block.find("\r\n", pos);
    std::string_view line = block.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    std::size_t colon = line.find(':');
    if (colon != std::string_view::npos && boost::beast::iequals(trim(line.substr(0, colon)), name))
      return trim(line.substr(colon + 1));
    if (eol == std::string_view::npos) break;
    pos = eol + 2;
  }
  return {};
}

}  // namespace

SoapEnvelopeSpan soap_envelope_of(std::string_view content_type, std::string_view body, bool body_complete) {
  SoapEnvelopeSpan out;
  const std::string_view type = media_type(content_type);
  if (!boost::beast::iequals(type, "multipart/related")) {
    out.ok = true;
    out.envelope = body;
    out.envelope_complete = body_complete;
    return out;
  }
  auto boundary = media_param(content_type, "boundary");
  if (!boundary || boundary->empty() || boundary->size() > 70) {
    out.error = "multipart/related without a usable boundary";
    return out;
  }
  const std::string start = std::string(strip_angles(media_param(content_type, "start").value_or("")));
  const std::string delimiter = "--" + *boundary;
  const std::string inner_delimiter = "\r\n" + delimiter;

  // The first delimiter starts the body or follows a CRLF ending the preamble.
  std::size_t pos;
  if (body.substr(0, delimiter.size()) == delimiter) {
    pos = 0;
  } else {
    pos = body.find(inner_delimiter);
    if (pos != std::string_view::npos) pos += 2;
  }
  for (;;) {
    if (pos == std::string_view::npos) break;
    std::size_t after = pos + delimiter.size();
    if (body.size() < after + 2) break;
    if (body.substr(after, 2) == "--") {
      out.error = "multipart/related ends before its root part";
      return out;
    }
    std::size_t line_end = body.find("\r\n", after);  // transport padding may precede the CRLF
    if (line_end == std::string_view::npos) break;
    std::size_t headers_end = body.find("\r\n\r\n", line_end);
    if (headers_end == std::string_view::npos) break;
    // headers_end == line_end: a part without headers.
    std::string_view headers =
        headers_end == line_end ? std::string_view{} : body.substr(line_end + 2, headers_end - line_end - 2);
    std::size_t content = headers_end + 4;
    std::size_t next = body.find(inner_delimiter, content);
    const bool is_root = start.empty() || strip_angles(part_header(headers, "Content-ID")) == start;
    if (is_root) {
      out.ok = true;
      if (next == std::string_view::npos) {
        out.envelope = body.substr(content);
        out.envelope_complete = body_complete;
      } else {
        out.envelope = body.substr(content, next - content);
        out.envelope_complete = true;
      }
      return out;
    }
    pos = next == std::string_view::npos ? next : next + 2;
  }
  if (body_complete) {
    out.error = start.empty() ? "multipart/related has no part" : "multipart/related has no part <" + start + ">";
    return out;
  }
  out.need_more = true;
  return out;
}

bool dechunk_prefix(std::string_view raw, std::size_t max_payload, std::string& payload, bool& complete) {
  complete = false;
  std::size_t pos = 0;
  while (pos < raw.size() && payload.size() < max_payload) {
    std::size_t eol = raw.find("\r\n", pos);
    if (eol == std::string_view::npos) return raw.size() - pos <= 1024;  // the prefix ends in a size line
    std::string_view line = raw.substr(pos, eol - pos);
    line = line.substr(0, line.find(';'));  // chunk extensions ignored
    line = trim(line);
    if (line.empty() || line.size() > 16) return false;
    std::uint64_t size = 0;
    for (char c : line) {
      if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
      size = size * 16 + static_cast<std::uint64_t>(std::isdigit(static_cast<unsigned char>(c))
                                                       ? c - '0'
                                                       : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10);
    }
    pos = eol + 2;
    if (size == 0) {
      complete = true;
      return true;
    }
    std::size_t avail = std::min<std::uint64_t>(size, raw.size() - pos);
    std::size_t take = std::min(avail, max_payload - payload.size());
    payload.append(raw.substr(pos, take));
    if (avail < size) return true;  // the prefix ends inside this chunk
    pos += size;
    if (raw.size() - pos < 2) return true;
    if (raw.substr(pos, 2) != "\r\n") return false;
    pos += 2;
  }
  return true;
}

}  // namespace orgproxy::daemon
