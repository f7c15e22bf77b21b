#pragma once

// Opening a gallery database by its location: a SQLite file's path, or a PostgreSQL server's
// postgresql:// URL (when the library was built with libpq: SIAMESE_WITH_POSTGRES, which the
// siamese::gallery target sets where it found libpq).

#include <siamese/detail/postgres_url.hpp>
#include <siamese/errors.hpp>
#include <siamese/gallery_store.hpp>
#include <siamese/sqlite_gallery_store.hpp>
#ifdef SIAMESE_WITH_POSTGRES
#include <siamese/postgres_gallery_store.hpp>
#endif

#include <memory>
#include <string>

namespace siamese {

/// Whether `location` names a gallery server (a postgresql:// or postgres:// URL) rather than a
/// SQLite file.
inline bool is_gallery_server(const std::string& location) { return detail::postgres::is_url(location); }

/// `location` as messages, logs and JSON show it: a URL with its password masked, a path as it is.
inline std::string displayed_location(const std::string& location) {
  return is_gallery_server(location) ? detail::postgres::masked(location) : location;
}

namespace detail {
[[noreturn]] inline void no_postgres_support(const std::string& location) {
  throw GalleryError("'" + displayed_location(location) +
                     "' is a PostgreSQL URL, but this build of siamese has no PostgreSQL support (build it where "
                     "libpq is installed: Debian's libpq-dev)");
}
}  // namespace detail

/// The gallery database at `location`, created for the model (`model_name`, `embedding_size`)
/// when there is none: a SqliteGalleryStore for a path, a PostgresGalleryStore for a URL.
/// Throws as their open_or_create().
inline std::unique_ptr<GalleryStore> open_gallery_store(const std::string& location, const std::string& model_name,
                                                        std::int64_t embedding_size, GalleryStoreOptions options = {}) {
  if (!is_gallery_server(location)) return SqliteGalleryStore::open_or_create(location, model_name, embedding_size, std::move(options));
#ifdef SIAMESE_WITH_POSTGRES
  return PostgresGalleryStore::open_or_create(location, model_name, embedding_size, std::move(options));
#else
  detail::no_postgres_support(location);
#endif
}

/// The existing gallery database at `location`, whatever its model. Throws as the stores' open().
inline std::unique_ptr<GalleryStore> open_gallery_store(const std::string& location, GalleryStoreOptions options = {}) {
  if (!is_gallery_server(location)) return SqliteGalleryStore::open(location, std::move(options));
#ifdef SIAMESE_WITH_POSTGRES
  return PostgresGalleryStore::open(location, std::move(options));
#else
  detail::no_postgres_support(location);
#endif
}

}  // namespace siamese
