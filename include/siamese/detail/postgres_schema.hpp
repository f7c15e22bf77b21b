#pragma once

// The gallery's schema on a PostgreSQL server: what PostgresGalleryStore creates in a database,
// and the check that the database holds exactly that before a row of it is read or written.

#include <siamese/detail/format.hpp>
#include <siamese/detail/postgres.hpp>
#include <siamese/errors.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <iterator>
#include <string>

namespace siamese::detail::postgres {

/// The PostgreSQL schema (namespace) that holds a gallery: one gallery per database, beside
/// whatever else the database holds.
inline constexpr const char* gallery_namespace = "siamese_gallery";
inline constexpr std::int64_t gallery_schema_version = 1;
/// The schema's comment, which carries its version.
inline std::string schema_comment(std::int64_t version) { return "siamese gallery schema " + std::to_string(version); }
/// The channel every commit is announced on, with its generation as the payload.
inline constexpr const char* gallery_channel = "siamese_gallery";
/// The advisory lock two nodes creating the schema at once take in turn.
inline constexpr std::int64_t creation_lock = 0x5347414c;  // "SGAL"

/// The statements that create the schema, in order.
inline constexpr const char* gallery_ddl[] = {
    "CREATE SCHEMA siamese_gallery",
    "CREATE TABLE siamese_gallery.model (id integer PRIMARY KEY CHECK (id = 1), name text NOT NULL,"
    " embedding_size integer NOT NULL, generation bigint NOT NULL, last_rewrite bigint NOT NULL)",
    "CREATE TABLE siamese_gallery.people (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE)",
    "CREATE TABLE siamese_gallery.embeddings (id bigserial PRIMARY KEY,"
    " person bigint NOT NULL REFERENCES siamese_gallery.people(id), generation bigint NOT NULL, vector bytea NOT NULL,"
    " source text, content_hash bigint, UNIQUE (person, content_hash))",
    // Removals (renamed_to NULL) and renames, so that a node that knows a generation applies
    // them instead of reading every row again.
    "CREATE TABLE siamese_gallery.rewrites (generation bigint PRIMARY KEY, person text NOT NULL, renamed_to text)",
};

/// Every object of the namespace as the catalog describes it, one "kind|name|definition" line
/// each, sorted: relations with their kind, columns with type, NOT NULL and default,
/// constraints, and what must not be there at all (triggers, rules, policies, row security,
/// functions).
inline constexpr const char* catalog_query = R"sql(
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = 'siamese_gallery')
SELECT kind || '|' || name || '|' || definition FROM (
  SELECT 'relation' AS kind, c.relname::text AS name, c.relkind::text AS definition
    FROM pg_class c, ns WHERE c.relnamespace = ns.oid
  UNION ALL
  SELECT 'column', c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
         || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum, ns
   WHERE c.relnamespace = ns.oid AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'constraint', con.conname::text, pg_get_constraintdef(con.oid) FROM pg_constraint con, ns WHERE con.connamespace = ns.oid
  UNION ALL
  SELECT 'trigger', t.tgname || ' on ' || c.relname, '' FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid, ns
   WHERE c.relnamespace = ns.oid AND NOT t.tgisinternal
  UNION ALL
  SELECT 'rule', r.rulename || ' on ' || c.relname, '' FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class, ns
   WHERE c.relnamespace = ns.oid
  UNION ALL
  SELECT 'policy', p.polname || ' on ' || c.relname, '' FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid, ns
   WHERE c.relnamespace = ns.oid
  UNION ALL
  SELECT 'row security', c.relname::text, '' FROM pg_class c, ns WHERE c.relnamespace = ns.oid AND c.relrowsecurity
  UNION ALL
  SELECT 'function', p.proname::text, '' FROM pg_proc p, ns WHERE p.pronamespace = ns.oid
) objects ORDER BY 1
)sql";

/// What catalog_query returns for the schema gallery_ddl creates.
inline constexpr const char* gallery_catalog[] = {
    "column|embeddings.content_hash|bigint",
    "column|embeddings.generation|bigint not null",
    "column|embeddings.id|bigint not null default nextval('siamese_gallery.embeddings_id_seq'::regclass)",
    "column|embeddings.person|bigint not null",
    "column|embeddings.source|text",
    "column|embeddings.vector|bytea not null",
    "column|model.embedding_size|integer not null",
    "column|model.generation|bigint not null",
    "column|model.id|integer not null",
    "column|model.last_rewrite|bigint not null",
    "column|model.name|text not null",
    "column|people.id|bigint not null default nextval('siamese_gallery.people_id_seq'::regclass)",
    "column|people.name|text not null",
    "column|rewrites.generation|bigint not null",
    "column|rewrites.person|text not null",
    "column|rewrites.renamed_to|text",
    "constraint|embeddings_person_content_hash_key|UNIQUE (person, content_hash)",
    "constraint|embeddings_person_fkey|FOREIGN KEY (person) REFERENCES siamese_gallery.people(id)",
    "constraint|embeddings_pkey|PRIMARY KEY (id)",
    "constraint|model_id_check|CHECK ((id = 1))",
    "constraint|model_pkey|PRIMARY KEY (id)",
    "constraint|people_name_key|UNIQUE (name)",
    "constraint|people_pkey|PRIMARY KEY (id)",
    "constraint|rewrites_pkey|PRIMARY KEY (generation)",
    "relation|embeddings|r",
    "relation|embeddings_id_seq|S",
    "relation|embeddings_person_content_hash_key|i",
    "relation|embeddings_pkey|i",
    "relation|model|r",
    "relation|model_pkey|i",
    "relation|people|r",
    "relation|people_id_seq|S",
    "relation|people_name_key|i",
    "relation|people_pkey|i",
    "relation|rewrites|r",
    "relation|rewrites_pkey|i",
};

/// Whether the database holds a gallery schema (checked or not).
inline bool has_gallery_schema(Connection& db) {
  return db.run("SELECT 1 FROM pg_namespace WHERE nspname = 'siamese_gallery'").rows() == 1;
}

/// Creates the schema and the model record, unless another node did first. Requires: no
/// transaction open.
inline void create_gallery_schema(Connection& db, const std::string& model_name, std::int64_t embedding_size) {
  db.execute("BEGIN");
  try {
    db.run("SELECT pg_advisory_xact_lock($1)", Parameters().integer(creation_lock));
    if (!has_gallery_schema(db)) {
      for (const char* statement : gallery_ddl) db.execute(statement);
      db.execute("COMMENT ON SCHEMA siamese_gallery IS '" + schema_comment(gallery_schema_version) + "'");
      db.run("INSERT INTO siamese_gallery.model VALUES (1, $1, $2, 0, 0)", Parameters().text(model_name).integer(embedding_size));
    }
    db.execute("COMMIT");
  } catch (...) {
    try {
      db.execute("ROLLBACK");
    } catch (const GalleryError&) {  // the connection is gone: the server rolled back
    }
    throw;
  }
}

/// Checks that the database holds a gallery of this schema version made of exactly the
/// schema's objects, reading nothing but the catalog. Refuses by name anything this library
/// does not create: a trigger (which could delete rows on every enrollment), a rule, a policy,
/// row security, a function, an extra table, index or column, a changed default, a missing
/// object. Throws GalleryError naming the server and the object.
inline void check_gallery_schema(Connection& db) {
  const std::string name = "gallery database '" + db.name() + "'";
  if (!has_gallery_schema(db)) {
    throw GalleryError("'" + db.name() + "' holds no siamese gallery (no schema 'siamese_gallery')");
  }
  const auto comment = db.run("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'siamese_gallery'");
  const auto found = comment.is_null(0, 0) ? std::string() : comment.text(0, 0);
  const std::string prefix = "siamese gallery schema ";
  if (found.rfind(prefix, 0) != 0) {
    throw GalleryError("'" + db.name() + "' has a schema 'siamese_gallery' of another application ('" +
                       printable(found.substr(0, 64)) + "'), not a siamese gallery");
  }
  if (found != schema_comment(gallery_schema_version)) {
    const auto version = found.substr(prefix.size());
    const bool newer = std::all_of(version.begin(), version.end(), [](unsigned char c) { return std::isdigit(c) != 0; }) && version.size() < 10 && !version.empty() &&
                       std::stoll(version) > gallery_schema_version;
    throw GalleryError("'" + db.name() + "' has gallery schema version " + printable(version.substr(0, 16)) +
                       "; this library reads version " + std::to_string(gallery_schema_version) +
                       (newer ? " (made by a newer siamese)" : ""));
  }
  const auto objects = db.run(catalog_query);
  std::size_t matched = 0;
  for (int i = 0; i < objects.rows(); ++i) {
    const auto line = objects.text(i, 0);
    const auto kind = line.substr(0, line.find('|'));
    const auto rest = line.substr(kind.size() + 1);
    const auto object = rest.substr(0, rest.find('|'));
    const auto definition = rest.substr(object.size() + 1);
    const auto expected = std::find_if(std::begin(gallery_catalog), std::end(gallery_catalog), [&](const char* e) {
      return std::string(e).rfind(kind + "|" + object + "|", 0) == 0;
    });
    if (expected == std::end(gallery_catalog)) {
      throw GalleryError(name + " holds " + printable(kind) + " '" + printable(object) +
                         "', which this library does not create: refused unread and unchanged (a gallery from "
                         "elsewhere may carry a trigger, rule or policy that changes or hides enrollments)");
    }
    if (line != *expected) {
      throw GalleryError(name + "'s " + printable(kind) + " '" + printable(object) + "' differs from the one this library creates (" +
                         printable(definition.substr(0, 200)) + "): refused unread and unchanged");
    }
    ++matched;
  }
  if (matched != std::size(gallery_catalog)) {
    throw GalleryError(name + " lacks part of the gallery schema (" + std::to_string(matched) + " of " +
                       std::to_string(std::size(gallery_catalog)) + " objects): refused unread and unchanged");
  }
}

}  // namespace siamese::detail::postgres
