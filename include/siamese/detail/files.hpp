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

/// Flushes a file (or a folder's entries) to disk. Returns false when the system refuses.
inline bool sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return false;
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  return synced;
}

/// Replaces `file` by what `write` puts at the temporary path it is given (FILE.tmp): the
/// temporary is synced to disk, then renamed over `file`, and the folder synced, so a crash, a
/// kill or a failed write leaves either the previous file or the new one, whole. `what` names
/// the file's kind in errors. Throws FileError; `write`'s own exceptions pass through.
template <class Write>
void replace_file(const std::filesystem::path& file, const std::string& what, Write write) {
  const std::string temporary = file.string() + ".tmp";
  try {
    write(temporary);
    if (!sync_path(temporary, O_RDONLY)) {
      throw FileError("cannot sync " + what + " '" + temporary + "': " + std::strerror(errno) + "; '" +
                      file.string() + "' is unchanged");
    }
  } catch (...) {
    std::remove(temporary.c_str());
    throw;
  }
  if (std::rename(temporary.c_str(), file.string().c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(temporary.c_str());
    throw FileError("cannot replace " + what + " '" + file.string() + "': " + why + "; it is unchanged");
  }
  const auto folder = file.has_parent_path() ? file.parent_path().string() : std::string(".");
  sync_path(folder, O_RDONLY | O_DIRECTORY);  // best effort: the rename is already visible
}

/// Replaces `file` by `bytes`, as replace_file() does.
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
    if (::close(fd) != 0) {
      throw FileError("cannot write " + what + " '" + temporary + "': " + std::strerror(errno) + "; '" + file.string() + "' is unchanged");
    }
  });
}

}  // namespace siamese::detail
