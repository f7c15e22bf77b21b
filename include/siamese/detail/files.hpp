#pragma once

#include <siamese/errors.hpp>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
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

/// Creates `folder` and its parents where missing. Throws FileError naming it, and `what` it
/// is for, when it cannot be made (a file in the way, no permission).
inline void create_folder(const std::filesystem::path& folder, const std::string& what) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  if (ec || !std::filesystem::is_directory(folder, ec)) {
    throw FileError("cannot create " + what + " folder '" + folder.string() + "': " +
                    (ec ? ec.message() : std::string("something else is in the way")));
  }
}

/// Creates an empty file beside `file` under a name no other writer holds (FILE.tmp.PID.N.RANDOM,
/// made with O_EXCL: a name another writer created is skipped, never shared) and returns its
/// path. Permissions are 0644 less the umask, as for any new file. Throws FileError.
inline std::string create_unique_temporary(const std::filesystem::path& file, const std::string& what) {
  static std::atomic<std::uint64_t> counter{0};
  std::random_device entropy;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const std::string candidate = file.string() + ".tmp." + std::to_string(::getpid()) + "." +
                                  std::to_string(counter.fetch_add(1)) + "." + std::to_string(entropy());
    const int fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::close(fd);
      return candidate;
    }
    if (errno != EEXIST) {
      throw FileError("cannot write " + what + " '" + file.string() + "': no temporary file can be made beside it ('" +
                      candidate + "': " + std::strerror(errno) + "); it is unchanged");
    }
  }
  throw FileError("cannot write " + what + " '" + file.string() + "': 100 temporary names beside it were taken; it is unchanged");
}

/// Replaces `file` by what `write` puts at the temporary path it is given: a new file beside
/// `file` that belongs to this call alone (create_unique_temporary), so that any number of
/// writers of the same file, in any processes, never touch each other's bytes. The temporary
/// is synced to disk, then renamed over `file`, and the folder synced: a crash, a kill or a
/// failed write leaves either the previous file or one writer's new file, whole; the last
/// rename wins. `write` may truncate or replace the temporary. `what` names the file's kind in
/// errors. Throws FileError; `write`'s own exceptions pass through; the temporary is removed
/// on every failure.
template <class Write>
void replace_file(const std::filesystem::path& file, const std::string& what, Write write) {
  const std::string temporary = create_unique_temporary(file, what);
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
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
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

/// The text of `file`, at most `max_bytes`; `what` names it in errors ("calibration 'F'").
/// Throws FileError when it is missing, not a regular file or unreadable; MetadataError when larger.
inline std::string read_text_file(const std::filesystem::path& file, const std::string& what, std::uintmax_t max_bytes = 16u << 20) {
  std::error_code ec;
  // A folder opens as a stream and fails only when read, with std::ios_base::failure.
  if (!std::filesystem::is_regular_file(file, ec)) throw FileError("cannot open " + what);
  if (std::filesystem::file_size(file, ec) > max_bytes) {
    throw MetadataError(what + " is larger than " + std::to_string(max_bytes) + " bytes");
  }
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  if (!in || !(text << in.rdbuf())) throw FileError("cannot read " + what);
  return text.str();
}

/// What `load(file)` reads from the file `file` that sits beside a model, if there is one;
/// `what` names its kind ("calibration"). Throws as `load`, and MetadataError naming both models
/// when it was made for a model other than `model_name`: a threshold fitted to one model's
/// distances means nothing for another's.
template <class Load>
auto load_beside_model(const std::filesystem::path& file, const std::string& model_name, const std::string& what, Load load)
    -> std::optional<decltype(load(file))> {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return std::nullopt;
  auto loaded = load(file);
  if (loaded.model_name != model_name) {
    throw MetadataError(what + " '" + file.string() + "' was made for model '" + loaded.model_name + "', not '" + model_name + "'");
  }
  return loaded;
}

}  // namespace siamese::detail
