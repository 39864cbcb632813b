// Message heads whose fields live in a per-exchange arena (the keep-alive hot path, issue 7).
#pragma once

#include <cstddef>
#include <memory_resource>

#include <boost/beast/http/fields.hpp>

namespace orgproxy::daemon {

/// The allocator of the data path's message heads: Beast allocates one block per header field (and one
/// more for each set()), twenty mallocs and frees per proxied request with std::allocator. Drawn instead
/// from a HeadArena that the session resets between messages.
using HeadAllocator = std::pmr::polymorphic_allocator<char>;

/// Header fields drawn from a HeadArena (the request and response heads of the HTTP data path).
using HeadFields = boost::beast::http::basic_fields<HeadAllocator>;

/// A monotonic arena for one message head's fields: allocation is a pointer bump into an inline block
/// (kInlineBytes, enough for a usual SOAP exchange's head), beyond which it grows in heap chunks;
/// deallocation is a no-op. reset() frees everything at once: call it only once no parser or message
/// using it lives any more. Memory is bounded by what one head may hold (the listener's
/// max_header_bytes / the response head limit, plus the few fields orgproxy sets), never by the number
/// of requests on a connection, since every message starts from a reset arena.
class HeadArena {
 public:
  static constexpr std::size_t kInlineBytes = 4096;

  HeadArena() = default;
  HeadArena(const HeadArena&) = delete;
  HeadArena& operator=(const HeadArena&) = delete;

  /// The allocator to construct a parser's fields with.
  HeadAllocator allocator() { return HeadAllocator(&resource_); }
  /// Frees every block handed out since the last reset (back to the inline block).
  void reset() { resource_.release(); }

 private:
  alignas(std::max_align_t) std::byte inline_[kInlineBytes];
  std::pmr::monotonic_buffer_resource resource_{inline_, sizeof inline_, std::pmr::new_delete_resource()};
};

}  // namespace orgproxy::daemon
