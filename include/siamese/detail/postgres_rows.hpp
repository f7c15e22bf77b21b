#pragma once

// The gallery's embeddings on the wire: many rows per INSERT on the way in, one binary COPY on
// the way out.

#include <siamese/detail/postgres.hpp>
#include <siamese/errors.hpp>
#include <siamese/gallery_store.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace siamese::detail::postgres {

/// Inserts `enrollment`'s rows [K, embedding_size] (float32, contiguous) for `person` at
/// `generation`, a thousand per statement; a row whose (person, content hash) is there already
/// is skipped by the unique key. Returns the rows added. Requires: an open transaction.
inline std::int64_t insert_embeddings(Connection& db, std::int64_t person, std::int64_t generation, const Enrollment& enrollment,
                                      std::int64_t embedding_size) {
  const auto& rows = enrollment.embeddings;
  const auto row_bytes = static_cast<std::size_t>(embedding_size) * sizeof(float);
  std::int64_t added = 0;
  constexpr std::int64_t chunk = 1000;
  for (std::int64_t start = 0; start < rows.size(0); start += chunk) {
    const auto count = std::min(chunk, rows.size(0) - start);
    std::string sql = "INSERT INTO siamese_gallery.embeddings(person, generation, vector, source, content_hash) VALUES ";
    Parameters values;
    for (std::int64_t i = start; i < start + count; ++i) {
      const int base = values.size();
      sql += (i == start ? "(" : ",(") + std::string("$") + std::to_string(base + 1) + ",$" + std::to_string(base + 2) + ",$" +
             std::to_string(base + 3) + ",$" + std::to_string(base + 4) + ",$" + std::to_string(base + 5) + ")";
      values.integer(person).integer(generation).bytes(rows.data_ptr<float>() + i * embedding_size, row_bytes);
      const auto* photo = enrollment.photos.empty() ? nullptr : &enrollment.photos[static_cast<std::size_t>(i)];
      if (photo != nullptr && !photo->source.empty()) values.text(photo->source); else values.null();
      if (photo != nullptr && photo->content_hash) values.integer(static_cast<std::int64_t>(*photo->content_hash)); else values.null();
    }
    added += db.run(sql + " ON CONFLICT (person, content_hash) DO NOTHING", values).changed();
  }
  return added;
}

/// Reads the rows after id `after`, oldest first, in one binary COPY: `out`'s embeddings
/// [rows, embedding_size], owners and row_generations, and the photo records when `photos` is
/// given. Throws GalleryError naming the server and the row for a row of the wrong size or
/// without a person. Names and values are the caller's to check. Requires: an open
/// transaction (one snapshot for the count and the rows).
inline void copy_embeddings(Connection& db, std::int64_t after, std::int64_t embedding_size, GalleryStoreRows& out,
                            std::vector<EnrolledPhoto>* photos) {
  const auto rows = db.run("SELECT count(*) FROM siamese_gallery.embeddings WHERE id > $1", Parameters().integer(after)).integer(0, 0);
  out.embeddings = torch::empty({rows, embedding_size}, torch::kFloat32);
  out.owners.reserve(static_cast<std::size_t>(rows));
  out.row_generations.reserve(static_cast<std::size_t>(rows));
  const auto row_bytes = static_cast<int>(embedding_size * static_cast<std::int64_t>(sizeof(float)));
  const auto damaged = [&](std::int64_t id, const std::string& what) {
    return GalleryError("gallery database '" + db.name() + "' is damaged: embedding " + std::to_string(id) + " " + what);
  };
  std::int64_t i = 0;
  // Every row: one join. The rows after a known one: each row's person by its key, so the read
  // costs what it returns, whatever the planner's statistics say of the tables.
  const std::string person = after == 0 ? "p.name" : "(SELECT p.name FROM siamese_gallery.people p WHERE p.id = e.person)";
  const std::string join = after == 0 ? " LEFT JOIN siamese_gallery.people p ON p.id = e.person" : "";
  db.copy_out("COPY (SELECT e.id, " + person + ", e.vector, e.generation, e.source, e.content_hash FROM siamese_gallery.embeddings e" +
                  join + " WHERE e.id > " + std::to_string(after) + " ORDER BY e.id) TO STDOUT (FORMAT binary)",
              [&](const std::vector<std::pair<const char*, int>>& fields) {
                if (fields.size() != 6 || fields[0].second != 8 || fields[3].second != 8 || i >= rows) {
                  throw GalleryError("gallery database '" + db.name() + "' sent a row that is not one of its embeddings");
                }
                const auto id = Connection::read_int64(fields[0].first);
                if (fields[1].first == nullptr) throw damaged(id, "has no person (embeddings without a person)");
                if (fields[2].second != row_bytes) {
                  throw damaged(id, "holds " + std::to_string(fields[2].second) + " bytes, expected " + std::to_string(row_bytes));
                }
                std::memcpy(out.embeddings.data_ptr<float>() + i * embedding_size, fields[2].first, static_cast<std::size_t>(row_bytes));
                out.owners.emplace_back(fields[1].first, static_cast<std::size_t>(fields[1].second));
                out.row_generations.push_back(Connection::read_int64(fields[3].first));
                if (photos != nullptr) {
                  EnrolledPhoto photo;
                  if (fields[4].first != nullptr) photo.source.assign(fields[4].first, static_cast<std::size_t>(fields[4].second));
                  if (fields[5].first != nullptr && fields[5].second == 8) {
                    photo.content_hash = static_cast<std::uint64_t>(Connection::read_int64(fields[5].first));
                  }
                  photos->push_back(std::move(photo));
                }
                ++i;
              });
  if (i != rows) throw GalleryError("gallery database '" + db.name() + "' is damaged: it lost rows while they were read");
}

}  // namespace siamese::detail::postgres
