// VIHF extraction with libxml2's streaming reader: namespaces by URI, no network, no DTD, no entities.
#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlreader.h>

#include <algorithm>
#include <memory>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "orgproxy/daemon/vihf.hpp"

namespace orgproxy::daemon {

namespace {

constexpr std::string_view kSoap12 = "http://www.w3.org/2003/05/soap-envelope";
constexpr std::string_view kWsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
constexpr std::string_view kSaml2 = "urn:oasis:names:tc:SAML:2.0:assertion";

struct ReaderDeleter {
  void operator()(xmlTextReader* r) const { xmlFreeTextReader(r); }
};
using ReaderPtr = std::unique_ptr<xmlTextReader, ReaderDeleter>;

struct XmlCharDeleter {
  void operator()(xmlChar* p) const { xmlFree(p); }
};
using XmlCharPtr = std::unique_ptr<xmlChar, XmlCharDeleter>;

std::string_view sv(const xmlChar* p) { return p ? std::string_view(reinterpret_cast<const char*>(p)) : ""; }

std::string_view trim_xml_space(std::string_view s) {
  constexpr std::string_view ws = " \t\r\n";
  auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// The first error libxml2 reports; later ones are consequences.
struct ErrorSink {
  bool seen = false;
  int line = 0;
  std::string message;
};

void on_error(void* arg, xmlError* err) {
  auto* sink = static_cast<ErrorSink*>(arg);
  if (sink->seen || !err || err->level < XML_ERR_ERROR) return;
  sink->seen = true;
  sink->line = err->line;
  sink->message = err->message ? std::string(trim_xml_space(err->message)) : "XML error";
}

// One reader per thread, reset for each scan (xmlReaderNewMemory): creating and freeing a reader (parser
// context, dictionary, SAX state) for every request cost more than the scan itself. It is replaced after
// kReaderUses scans, so that its name dictionary (names taken from client bodies) stays small, and after
// any parse error, so that no state of a hostile document carries over. The error sink lives with it: the
// handler's argument stays valid even for an error reported while the reader is being reset.
struct ReaderCache {
  static constexpr unsigned kReaderUses = 64;
  // No XML_PARSE_NOENT (entities stay unexpanded), no DTDLOAD/DTDATTR/DTDVALID, no network, no XInclude.
  static constexpr int kOptions = XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOBLANKS;
  ReaderPtr reader;
  unsigned uses = 0;
  ErrorSink sink;

  xmlTextReader* start(std::string_view xml) {
    sink = {};
    const int size = static_cast<int>(xml.size());
    if (reader && uses < kReaderUses &&
        xmlReaderNewMemory(reader.get(), xml.data(), size, nullptr, nullptr, kOptions) == 0) {
      ++uses;
    } else {
      reader.reset(xmlReaderForMemory(xml.data(), size, nullptr, nullptr, kOptions));
      uses = 1;
      if (!reader) return nullptr;
    }
    xmlTextReaderSetStructuredErrorHandler(reader.get(), on_error, &sink);
    return reader.get();
  }
  void retire() { uses = kReaderUses; }
};

ReaderCache& thread_reader() {
  thread_local ReaderCache cache;
  return cache;
}

// What the element being read is, for the few we care about. Depths are xmlTextReaderDepth values.
enum class Capture { none, issuer, name_id, attribute_value };

class Scanner {
 public:
  explicit Scanner(xmlTextReader* r) : r_(r) {}

  // Returns true to keep reading, false when done (status set) or on a VIHF-level error.
  bool on_node() {
    const int type = xmlTextReaderNodeType(r_);
    const int depth = xmlTextReaderDepth(r_);
    if (type == XML_READER_TYPE_DOCUMENT_TYPE) return fail("the message has a DTD (SOAP 1.2 forbids it)", true);
    if (type == XML_READER_TYPE_ENTITY_REFERENCE) return fail("the message uses an entity reference", true);
    if (type == XML_READER_TYPE_ELEMENT) return on_start(depth, xmlTextReaderIsEmptyElement(r_) == 1);
    if (type == XML_READER_TYPE_END_ELEMENT) return on_end(depth);
    if ((type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_CDATA ||
         type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE) &&
        capture_ != Capture::none && depth == capture_depth_ + 1) {
      text_ += sv(xmlTextReaderConstValue(r_));
    }
    return true;
  }

  VihfScan& result() { return scan_; }
  bool header_done() const { return header_done_; }
  bool assertion_open() const { return assertion_depth_ >= 0; }

 private:
  bool is(std::string_view ns, std::string_view local) const {
    return sv(xmlTextReaderConstNamespaceUri(r_)) == ns && sv(xmlTextReaderConstLocalName(r_)) == local;
  }

  bool fail(std::string why, bool hostile = false) {
    scan_.status = VihfScan::Status::malformed;
    scan_.hostile = hostile;
    scan_.error = std::move(why) + " (line " + std::to_string(xmlTextReaderGetParserLineNumber(r_)) + ")";
    return false;
  }

  bool on_start(int depth, bool empty) {
    if (depth == 0) {
      if (!is(kSoap12, "Envelope")) return fail("the root element is not a SOAP 1.2 Envelope");
      scan_.envelope_seen = true;
      return true;
    }
    if (depth == 1) {
      if (is(kSoap12, "Header")) {
        in_header_ = !empty;
        if (empty) return stop_after_header();
        return true;
      }
      // The header, when there is one, comes first (SOAP 1.2 Part 1 §5.1): a body means no VIHF.
      return stop_after_header();
    }
    if (!in_header_) return true;
    if (depth == 2) {
      in_security_ = is(kWsse, "Security") && !empty;
      return true;
    }
    if (!in_security_) return true;
    if (depth == 3) {
      if (is(kSaml2, "Assertion")) {
        if (++assertions_ > 1) return fail("wsse:Security holds more than one SAML assertion", true);
        if (!empty) assertion_depth_ = depth;
      }
      return true;
    }
    if (assertion_depth_ < 0) return true;
    const int rel = depth - assertion_depth_;
    if (rel == 1) {
      section_ = Section::none;
      if (is(kSaml2, "Issuer")) return begin(Capture::issuer, depth, empty, "Issuer");
      if (is(kSaml2, "Subject")) section_ = Section::subject;
      if (is(kSaml2, "AttributeStatement")) section_ = Section::attributes;
      return true;
    }
    if (rel == 2) {
      if (section_ == Section::subject && is(kSaml2, "NameID"))
        return begin(Capture::name_id, depth, empty, "Subject/NameID");
      attribute_target_ = nullptr;
      if (section_ == Section::attributes && is(kSaml2, "Attribute")) {
        XmlCharPtr name(xmlTextReaderGetAttribute(r_, BAD_CAST "Name"));
        const std::string_view n = sv(name.get());
        if (n == "Identifiant_Structure") attribute_target_ = &scan_.vihf.structure_id;
        if (n == "Authentification_Mode") attribute_target_ = &scan_.vihf.auth_mode;
        if (n == "Secteur_Activite") attribute_target_ = &scan_.vihf.sector;
        if (attribute_target_) {
          attribute_name_ = n;
          if (seen_attribute(n)) return fail("the VIHF gives attribute " + std::string(n) + " twice", true);
          values_in_attribute_ = 0;
        }
      }
      return true;
    }
    if (rel == 3 && attribute_target_ && is(kSaml2, "AttributeValue")) {
      if (++values_in_attribute_ > 1) return fail("the VIHF attribute " + attribute_name_ + " has two values", true);
      return begin(Capture::attribute_value, depth, empty, attribute_name_);
    }
    return true;
  }

  bool begin(Capture what, int depth, bool empty, const std::string& label) {
    std::string* target = what == Capture::issuer    ? &scan_.vihf.issuer
                          : what == Capture::name_id ? &scan_.vihf.name_id
                                                     : attribute_target_;
    if (what != Capture::attribute_value) {
      if (seen_attribute(label)) return fail("the VIHF gives " + label + " twice", true);
    }
    if (empty) return true;
    capture_ = what;
    capture_depth_ = depth;
    capture_target_ = target;
    text_.clear();
    return true;
  }

  bool seen_attribute(std::string_view label) {
    if (std::find(seen_.begin(), seen_.end(), label) != seen_.end()) return true;
    seen_.emplace_back(label);
    return false;
  }

  bool on_end(int depth) {
    if (capture_ != Capture::none && depth == capture_depth_) {
      *capture_target_ = trim_xml_space(text_);
      capture_ = Capture::none;
      return true;
    }
    if (assertion_depth_ >= 0 && depth == assertion_depth_) {
      assertion_depth_ = -1;
      assertion_complete_ = true;
      return true;
    }
    if (depth == 2) in_security_ = false;
    if (depth == 1 && in_header_) return stop_after_header();
    return true;
  }

  bool stop_after_header() {
    header_done_ = true;
    in_header_ = false;
    if (!assertion_complete_) {
      scan_.status = VihfScan::Status::absent;
      return false;
    }
    if (scan_.vihf.structure_id.empty()) return fail("the VIHF assertion has no Identifiant_Structure");
    scan_.status = VihfScan::Status::found;
    return false;
  }

  enum class Section { none, subject, attributes };

  xmlTextReader* r_;
  VihfScan scan_;
  bool in_header_ = false;
  bool in_security_ = false;
  bool header_done_ = false;
  bool assertion_complete_ = false;
  int assertions_ = 0;
  int assertion_depth_ = -1;
  Section section_ = Section::none;
  std::string* attribute_target_ = nullptr;
  std::string attribute_name_;
  int values_in_attribute_ = 0;
  Capture capture_ = Capture::none;
  int capture_depth_ = 0;
  std::string* capture_target_ = nullptr;
  std::string text_;
  std::vector<std::string> seen_;
};

}  // namespace

VihfScan scan_vihf(std::string_view xml, bool complete) {
  // libxml2 must be initialised once before threads use it (its documentation for multithreaded use).
  static std::once_flag init;
  std::call_once(init, [] { xmlInitParser(); });

  VihfScan out;
  if (xml.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    out.status = VihfScan::Status::malformed;
    out.error = "envelope too large";
    return out;
  }
  ReaderCache& cache = thread_reader();
  xmlTextReader* reader = cache.start(xml);
  if (!reader) {
    out.status = VihfScan::Status::malformed;
    out.error = "XML reader could not be created";
    return out;
  }
  ErrorSink& sink = cache.sink;
  Scanner scanner(reader);
  int rc = 0;
  while ((rc = xmlTextReaderRead(reader)) == 1 && !sink.seen) {
    if (!scanner.on_node()) {
      if (sink.seen || scanner.result().status == VihfScan::Status::malformed) cache.retire();
      return std::move(scanner.result());
    }
  }
  if (sink.seen || rc < 0) cache.retire();
  if (rc == 0 && !sink.seen) {
    // The document ended (no more bytes) without a header end: no VIHF when it was all there.
    if (!complete) {
      out.status = VihfScan::Status::incomplete;
      out.envelope_seen = scanner.result().envelope_seen;
      return out;
    }
    out.status = VihfScan::Status::malformed;
    out.error = "the SOAP envelope ends before its header does";
    return out;
  }
  // A parse error. On a prefix it may only be where the bytes were cut (libxml2 does not say which, and
  // reports some cuts at the line of the construct they interrupt): read more. A real fault is then
  // reported once the envelope is complete, or the header does not end within vihf_max_bytes.
  if (!complete) {
    out.status = VihfScan::Status::incomplete;
    out.envelope_seen = scanner.result().envelope_seen;
    return out;
  }
  out.status = VihfScan::Status::malformed;
  out.error = "SOAP envelope is not well-formed XML: " + (sink.seen ? sink.message : std::string("read error")) +
              " (line " + std::to_string(sink.line) + ")";
  return out;
}

}  // namespace orgproxy::daemon
