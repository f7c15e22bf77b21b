#pragma once

#include <siamese/errors.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include <fcntl.h>
#include <unistd.h>

namespace siamese::detail {

/// FNV-1a, 64 bits: the library's content hash and file checksum.
inline std::uint64_t fnv1a(const void* data, std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::uint64_t h = 1469598103934665603ULL;
  for (std::size_t i = 0; i < size; ++i) {
    h ^= bytes[i];
    h *= 1099511628211ULL;
  }
  return h;
}

/// Replaces `file` by what `write` puts at the temporary path it is given (FILE.tmp), with a
/// rename, so a crash or a failed write leaves the previous file intact. `what` names the
/// file's kind in errors. Throws FileError; `write`'s own exceptions pass through.
template <class Write>
void replace_file(const std::filesystem::path& file, const std::string& what, Write write) {
  const std::string temporary = file.string() + ".tmp";
  try {
    write(temporary);
  } catch (...) {
    std::remove(temporary.c_str());
    throw;
  }
  if (std::rename(temporary.c_str(), file.string().c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(temporary.c_str());
    throw FileError("cannot replace " + what + " '" + file.string() + "': " + why + "; it is unchanged");
  }
}

/// Replaces `file` by `bytes`, written and synced to disk before the rename.
inline void write_file_atomically(const std::filesystem::path& file, const std::string& bytes, const std::string& what) {
  replace_file(file, what, [&](const std::string& temporary) {
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
      throw FileError("cannot write " + what + " '" + temporary + "': " + std::strerror(errno) + "; '" +
                      file.string() + "' is unchanged");
    }
    std::size_t written = 0;
    while (written < bytes.size()) {
      const auto n = ::write(fd, bytes.data() + written, bytes.size() - written);
      if (n <= 0) {
        const std::string why = std::strerror(errno);
        ::close(fd);
        throw FileError("cannot write " + what + " '" + temporary + "': " + why + "; '" + file.string() + "' is unchanged");
      }
      written += static_cast<std::size_t>(n);
    }
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!synced) throw FileError("cannot sync " + what + " '" + temporary + "'; '" + file.string() + "' is unchanged");
  });
}

}  // namespace siamese::detail
