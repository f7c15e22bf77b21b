#pragma once

// PostgreSQL URLs as the gallery sees them, without libpq: telling one from a file's path, and
// masking its password wherever it is shown.

#include <algorithm>
#include <string>

namespace siamese::detail::postgres {

/// Whether `location` names a PostgreSQL server ("postgresql://..." or "postgres://...")
/// rather than a SQLite file.
inline bool is_url(const std::string& location) {
  return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

/// `url` with its password (in the user part, or a `password=` parameter) written as "***":
/// what every message, log line and JSON output shows of a server's address.
inline std::string masked(const std::string& url) {
  std::string out = url;
  const auto scheme_end = out.find("://");
  if (scheme_end == std::string::npos) return out;
  const auto authority = scheme_end + 3;
  const auto authority_end = std::min(out.find_first_of("/?", authority), out.size());
  const auto at = out.rfind('@', authority_end);
  const auto colon = out.find(':', authority);
  if (at != std::string::npos && at >= authority && at < authority_end && colon < at) out.replace(colon + 1, at - colon - 1, "***");
  for (auto parameter = out.find('?'); parameter != std::string::npos; parameter = out.find('&', parameter + 1)) {
    if (out.compare(parameter + 1, 9, "password=") != 0) continue;
    const auto value = parameter + 10;
    const auto value_end = std::min(out.find('&', value), out.size());
    out.replace(value, value_end - value, "***");
  }
  return out;
}

}  // namespace siamese::detail::postgres
