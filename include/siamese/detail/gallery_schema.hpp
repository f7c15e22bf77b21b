#pragma once

// The gallery database's schema: what GalleryStore creates in a new file, and the check that a
// file holds exactly that before a row of it is read or written.

#include <siamese/detail/format.hpp>
#include <siamese/detail/sqlite.hpp>
#include <siamese/errors.hpp>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string>

namespace siamese::detail {

inline constexpr std::int64_t gallery_schema_version = 1;
inline constexpr std::int64_t gallery_application_id = 0x5347414c;  // "SGAL"

/// One object of the schema as SQLite keeps it in sqlite_master.
struct GallerySchemaObject {
  const char* type;
  const char* name;
  const char* table;
  const char* sql;  ///< null for SQLite's automatic index
};

/// The schema, object by object. The unique constraint on people's names and AUTOINCREMENT add
/// an index and a table of SQLite's own. A gallery database holds exactly these objects.
inline constexpr GallerySchemaObject gallery_schema[] = {
    {"table", "model", "model",
     "CREATE TABLE model (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL,"
     " embedding_size INTEGER NOT NULL, generation INTEGER NOT NULL, last_rewrite INTEGER NOT NULL)"},
    {"table", "people", "people", "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)"},
    {"index", "sqlite_autoindex_people_1", "people", nullptr},
    {"table", "embeddings", "embeddings",
     "CREATE TABLE embeddings (id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " person INTEGER NOT NULL REFERENCES people(id), vector BLOB NOT NULL, source TEXT, content_hash INTEGER)"},
    {"table", "sqlite_sequence", "sqlite_sequence", "CREATE TABLE sqlite_sequence(name,seq)"},
    {"index", "embeddings_by_person", "embeddings", "CREATE INDEX embeddings_by_person ON embeddings(person)"},
};

/// Whether the database holds nothing yet: no application id, no object.
inline bool is_empty_database(sqlite::Connection& db) {
  return db.integer("PRAGMA application_id") == 0 && db.integer("SELECT count(*) FROM sqlite_master") == 0;
}

/// Creates the schema and the model record in an empty database. Requires: a write
/// transaction the caller holds.
inline void create_gallery_schema(sqlite::Connection& db, const std::string& model_name, std::int64_t embedding_size) {
  for (const auto& object : gallery_schema) {
    if (object.sql != nullptr && std::string(object.name) != "sqlite_sequence") db.execute(object.sql);
  }
  db.execute("PRAGMA application_id = " + std::to_string(gallery_application_id) + ";"
             "PRAGMA user_version = " + std::to_string(gallery_schema_version) + ";");
  db.prepare("INSERT INTO model VALUES(1, ?1, ?2, 0, 0)").bind(1, model_name).bind(2, embedding_size).run();
}

/// Checks that the database is a gallery of this schema version holding exactly the schema's
/// objects, reading nothing but its header and sqlite_master. Refuses by name anything this
/// library does not create: a trigger (which could delete rows on every enrollment), a view
/// shadowing a table, an extra table or index, a table whose columns differ, a missing object.
/// Throws GalleryError naming the file and the object.
inline void check_gallery_schema(sqlite::Connection& db) {
  const std::string name = "gallery database '" + db.file() + "'";
  const auto app = db.integer("PRAGMA application_id");
  const auto version = db.integer("PRAGMA user_version");
  if (is_empty_database(db)) throw GalleryError("'" + db.file() + "' is an empty database, not a gallery");
  if (app != gallery_application_id) {
    throw GalleryError("'" + db.file() + "' is a SQLite database of another application (application_id " +
                       std::to_string(app) + "), not a siamese gallery");
  }
  if (version != gallery_schema_version) {
    throw GalleryError("'" + db.file() + "' has gallery schema version " + std::to_string(version) +
                       "; this library reads version " + std::to_string(gallery_schema_version) +
                       (version > gallery_schema_version ? " (made by a newer siamese)" : ""));
  }
  auto objects = db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master");
  std::size_t matched = 0;
  while (objects.step()) {
    const auto type = objects.text(0), object = objects.text(1), table = objects.text(2), sql = objects.text(3);
    const auto expected = std::find_if(std::begin(gallery_schema), std::end(gallery_schema),
                                       [&](const GallerySchemaObject& s) { return object == s.name; });
    if (expected == std::end(gallery_schema)) {
      throw GalleryError(name + " holds " + printable(type) + " '" + printable(object) + "'" +
                         (table != object ? " on '" + printable(table) + "'" : std::string()) +
                         ", which this library does not create: refused unread and unchanged (a gallery from "
                         "elsewhere may carry a trigger or view that changes or hides enrollments)");
    }
    const bool same_sql = expected->sql == nullptr ? objects.is_null(3) : !objects.is_null(3) && sql == expected->sql;
    if (type != expected->type || table != expected->table || !same_sql) {
      throw GalleryError(name + "'s " + printable(type) + " '" + object + "' differs from the one this library creates (" +
                         printable(sql.substr(0, 200)) + "): refused unread and unchanged");
    }
    ++matched;
  }
  if (matched != std::size(gallery_schema)) {
    throw GalleryError(name + " lacks part of the gallery schema (" + std::to_string(matched) + " of " +
                       std::to_string(std::size(gallery_schema)) + " objects): refused unread and unchanged");
  }
}

}  // namespace siamese::detail
