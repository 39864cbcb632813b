// orgproxy_resolv_shim: an LD_PRELOAD library that answers getaddrinfo() for test host names from a file, so
// a test can give a name several addresses (a dead one, then a live one) or change them while the daemon
// runs — without touching /etc/hosts or a DNS server. Names not in the file go to the real getaddrinfo.
//
// ORGPROXY_TEST_HOSTS_FILE names the file; it is read at every call. Each line: a name, then its addresses
// in the order getaddrinfo returns them, separated by spaces ("dmp.test.local 127.0.0.2 127.0.0.1").
// Only numeric services are served. The result is allocated the way glibc's freeaddrinfo frees it (one
// block per entry holding the addrinfo and its sockaddr; no canonical name), so freeaddrinfo is not wrapped.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using GetaddrinfoFn = int (*)(const char*, const char*, const addrinfo*, addrinfo**);

std::vector<std::string> addresses_of(const char* name) {
  const char* file = std::getenv("ORGPROXY_TEST_HOSTS_FILE");
  if (!file || !name) return {};
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string first;
    if (!(words >> first) || first != name) continue;
    std::vector<std::string> out;
    for (std::string a; words >> a;) out.push_back(a);
    return out;
  }
  return {};
}

addrinfo* make_entry(const std::string& address, int port, const addrinfo* hints) {
  const int socktype = hints && hints->ai_socktype ? hints->ai_socktype : SOCK_STREAM;
  const int protocol = hints && hints->ai_protocol ? hints->ai_protocol : IPPROTO_TCP;
  const int family = hints ? hints->ai_family : AF_UNSPEC;
  in6_addr v6{};
  in_addr v4{};
  if (inet_pton(AF_INET, address.c_str(), &v4) == 1 && (family == AF_UNSPEC || family == AF_INET)) {
    auto* ai = static_cast<addrinfo*>(std::calloc(1, sizeof(addrinfo) + sizeof(sockaddr_in)));
    auto* sa = reinterpret_cast<sockaddr_in*>(ai + 1);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(static_cast<uint16_t>(port));
    sa->sin_addr = v4;
    *ai = addrinfo{0, AF_INET, socktype, protocol, sizeof(sockaddr_in), reinterpret_cast<sockaddr*>(sa), nullptr, nullptr};
    return ai;
  }
  if (inet_pton(AF_INET6, address.c_str(), &v6) == 1 && (family == AF_UNSPEC || family == AF_INET6)) {
    auto* ai = static_cast<addrinfo*>(std::calloc(1, sizeof(addrinfo) + sizeof(sockaddr_in6)));
    auto* sa = reinterpret_cast<sockaddr_in6*>(ai + 1);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(static_cast<uint16_t>(port));
    sa->sin6_addr = v6;
    *ai = addrinfo{0, AF_INET6, socktype, protocol, sizeof(sockaddr_in6), reinterpret_cast<sockaddr*>(sa), nullptr, nullptr};
    return ai;
  }
  return nullptr;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int getaddrinfo(const char* node, const char* service,
                                                                  const addrinfo* hints, addrinfo** res) {
  static auto real = reinterpret_cast<GetaddrinfoFn>(dlsym(RTLD_NEXT, "getaddrinfo"));
  std::vector<std::string> addresses = addresses_of(node);
  if (addresses.empty()) return real(node, service, hints, res);
  char* end = nullptr;
  const long port = service ? std::strtol(service, &end, 10) : 0;
  if (service && (*end != '\0' || port < 0 || port > 65535)) return EAI_SERVICE;
  addrinfo* head = nullptr;
  addrinfo** tail = &head;
  for (const auto& a : addresses) {
    if (addrinfo* ai = make_entry(a, static_cast<int>(port), hints)) {
      *tail = ai;
      tail = &ai->ai_next;
    }
  }
  if (!head) return EAI_NONAME;
  *res = head;
  return 0;
}
