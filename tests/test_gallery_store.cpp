#include "fixtures.hpp"
#include "gallery_scenarios.hpp"

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <array>
#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>
#include <sys/wait.h>
#include <unistd.h>

using siamese::Gallery;
using scenarios::dim;
using scenarios::embedding_of;
using scenarios::exited_cleanly;
using scenarios::person;

namespace {

std::string file_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Raw SQL on a database, as another program would run it.
void sql(const std::filesystem::path& file, const std::string& statements) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
  char* error = nullptr;
  const int code = sqlite3_exec(db, statements.c_str(), nullptr, nullptr, &error);
  INFO((error != nullptr ? error : ""));
  sqlite3_free(error);
  sqlite3_close(db);
  REQUIRE(code == SQLITE_OK);
}


}  // namespace

TEST_CASE("A gallery database keeps enrollments, renames and removals across processes' handles", "[gallery][store]") {
  fixtures::TempDir dir;
  const auto file = dir / "people.db";
  auto writer = Gallery::open(file, "face", dim);
  auto reader = Gallery::open(file);  // another handle: what another process sees
  CHECK(reader.model_name() == "face");
  CHECK(reader.embedding_size() == dim);
  CHECK(reader.size() == 0);

  writer.enroll("ann", torch::stack({embedding_of(0, 0), embedding_of(0, 1)}),
                {{"ann1.jpg", 42}, {"ann2.jpg", std::nullopt}});
  writer.enroll("bob", embedding_of(1, 0));
  // The reader sees both enrollments without reopening (appended, not reloaded).
  CHECK(reader.size() == 3);
  CHECK(reader.identify(embedding_of(1, 0), 1, 1.0)[0].best() == "bob");

  CHECK(writer.rename("bob", "rob"));
  CHECK_FALSE(writer.rename("nobody", "x"));
  CHECK_THROWS_AS(writer.rename("ann", "rob"), siamese::Error);
  CHECK(reader.identify(embedding_of(1, 0), 1, 1.0)[0].best() == "rob");
  CHECK(writer.remove("ann"));
  CHECK_FALSE(writer.remove("ann"));
  CHECK(reader.people() == std::vector<std::pair<std::string, std::size_t>>{{"rob", 1}});

  // Photo records are kept beside their embeddings.
  writer.enroll("cyd", embedding_of(2, 0), {{"cyd.jpg", 7}});
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(file.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* query = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT source, content_hash FROM embeddings ORDER BY id DESC LIMIT 1", -1, &query, nullptr) ==
          SQLITE_OK);
  REQUIRE(sqlite3_step(query) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(query, 0))) == "cyd.jpg");
  CHECK(sqlite3_column_int64(query, 1) == 7);
  sqlite3_finalize(query);
  sqlite3_close(db);

  // A batch is one transaction: a bad entry anywhere leaves the database as it was.
  CHECK_THROWS_AS(writer.enroll({{"dan", embedding_of(3, 0), {}}, {"eve", torch::zeros({dim + 1}), {}}}),
                  siamese::ShapeError);
  CHECK(reader.size() == 2);
  CHECK_THROWS_WITH(writer.enroll("dan", embedding_of(3, 0), {{"a.jpg", 1}, {"b.jpg", 2}}),
                    Catch::Contains("2 photo records for 1 embeddings"));

  // The store itself refuses rows it cannot write as they are.
  CHECK_THROWS_AS(reader.store()->enroll({{"dan", torch::zeros({2, dim}, torch::kFloat64), {}}}), siamese::ShapeError);
  CHECK_THROWS_AS(reader.store()->enroll({{"dan", torch::zeros({dim, 2}).t(), {}}}), siamese::ShapeError);
  CHECK(reader.size() == 2);

  // In memory and back: enrollments() copies a gallery whole.
  Gallery memory("face", dim);
  memory.enroll(reader.enrollments());
  CHECK(memory.people() == reader.people());
  CHECK(reader.store()->integrity_check() == "ok");
}

TEST_CASE("Eight processes enrolling into one gallery database at once lose nothing", "[gallery][store][faults]") {
  fixtures::TempDir dir;
  const auto file = dir / "shared.db";
  constexpr int writers = 8, each = 50;
  auto reader = Gallery::open(file, "face", dim);
  std::vector<pid_t> children;
  for (int w = 0; w < writers; ++w) {
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      try {
        auto gallery = Gallery::open(file, "face", dim);
        for (int i = 0; i < each; ++i) gallery.enroll(person(w, i), embedding_of(w, i));
        _exit(0);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "writer %d: %s\n", w, e.what());
        _exit(1);
      }
    }
    children.push_back(child);
  }
  // Meanwhile this process identifies: the gallery only grows, and every answer is whole.
  std::size_t seen = 0;
  int searches = 0;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
       seen < static_cast<std::size_t>(writers * each) && std::chrono::steady_clock::now() < deadline; ++searches) {
    const auto now = reader.size();
    CHECK(now >= seen);
    seen = now;
    const auto found = reader.identify(embedding_of(3, 0), 1, 1.0)[0];
    if (found.known) CHECK(found.best() == person(3, 0));
  }
  int clean = 0;
  for (const auto child : children) clean += exited_cleanly(child);
  CHECK(clean == writers);
  INFO(searches << " searches while the writers ran");
  CHECK(reader.size() == static_cast<std::size_t>(writers * each));  // no restart needed
  CHECK(Gallery::open(file).people().size() == static_cast<std::size_t>(writers * each));
  CHECK(reader.identify(embedding_of(7, 49), 1, 1.0)[0].best() == person(7, 49));
  CHECK(reader.store()->integrity_check() == "ok");
}

TEST_CASE("A process killed inside a gallery transaction leaves every earlier enrollment", "[gallery][store][faults]") {
  fixtures::TempDir dir;
  const auto file = dir / "killed.db";
  {
    auto gallery = Gallery::open(file, "face", dim);
    gallery.enroll("before", embedding_of(0, 0));
  }
  SECTION("killed between statements of an open transaction") {
    scenarios::kill_inside_transaction([&] {
      sqlite3* db = nullptr;
      sqlite3_open(file.c_str(), &db);
      sqlite3_exec(db,
                   "BEGIN IMMEDIATE; INSERT INTO people(name) VALUES('half');"
                   "INSERT INTO embeddings(person, vector) VALUES(last_insert_rowid(), zeroblob(32));",
                   nullptr, nullptr, nullptr);
    });
  }
  SECTION("killed while enrolling as fast as it can") { scenarios::kill_while_enrolling(file.string()); }
  scenarios::check_after_killed_writer(file.string());
}

TEST_CASE("Damaged, foreign, other-model and newer gallery databases are refused unchanged", "[gallery][store][errors]") {
  fixtures::TempDir dir;
  auto refused = [](const std::filesystem::path& file, const std::string& why, auto open) {
    const auto before = file_bytes(file);
    CHECK_THROWS_AS(open(), siamese::GalleryError);
    CHECK_THROWS_WITH(open(), Catch::Contains(file.string()) && Catch::Contains(why));
    CHECK(file_bytes(file) == before);  // nothing changed
  };
  const auto good = dir / "good.db";
  Gallery::open(good, "face", dim).enroll("ann", embedding_of(0, 0));
  // A copy of the good database that `statements` changed, opened as it is and refused.
  auto refused_after = [&](const char* name, const std::string& statements, const std::string& why) {
    const auto file = dir / name;
    std::filesystem::copy_file(good, file);
    sql(file, statements);
    refused(file, why, [&] { return Gallery::open(file); });
  };

  refused(good, "cannot be used with 'other'", [&] { return Gallery::open(good, "other", dim); });
  refused(good, "(9-d)", [&] { return Gallery::open(good, "face", 9); });

  refused_after("newer.db", "PRAGMA user_version = 2", "schema version 2");

  const auto foreign = dir / "foreign.db";
  sql(foreign, "CREATE TABLE notes(text TEXT); INSERT INTO notes VALUES('mine')");
  refused(foreign, "another application", [&] { return Gallery::open(foreign, "face", dim); });
  refused(foreign, "another application", [&] { return Gallery::open(foreign); });

  const auto damaged = dir / "damaged.db";
  {
    auto bytes = file_bytes(good);
    for (std::size_t i = 100; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
    std::ofstream(damaged, std::ios::binary) << bytes;
  }
  refused(damaged, "damaged", [&] { return Gallery::open(damaged); });

  refused_after("short-row.db", "UPDATE embeddings SET vector = zeroblob(3)", "holds 3 bytes");
  refused_after("not-finite.db", "UPDATE embeddings SET vector = X'" + std::string(8 * 8, '0').replace(4, 4, "C07F") + "'",
                "non-finite");
  refused_after("orphans.db", "DELETE FROM people", "embeddings without a person");  // foreign keys are off for other programs
  refused_after("no-model.db", "DELETE FROM model", "no model record");
  refused_after("bad-size.db", "UPDATE model SET embedding_size = 0", "claims embedding size 0");
  // Objects this library never creates, refused by name before a row is read or written (the
  // trigger is the one found deleting ann's enrollment when someone else was enrolled); names
  // enroll refuses, written straight in, refused on read and never printed raw.
  const std::vector<std::array<const char*, 3>> hostile = {
      {"trigger.db",
       "CREATE TRIGGER wipe AFTER INSERT ON embeddings BEGIN "
       "DELETE FROM embeddings WHERE person IN (SELECT id FROM people WHERE name = 'ann'); END;",
       "trigger 'wipe' on 'embeddings', which this library does not create"},
      {"view.db", "ALTER TABLE people RENAME TO people_hidden; CREATE VIEW people AS SELECT * FROM people_hidden", "'people"},
      {"extra-table.db", "CREATE TABLE extra(x)", "table 'extra'"},
      {"extra-index.db", "CREATE INDEX people_by_name ON people(name)", "index 'people_by_name'"},
      {"altered-column.db", "ALTER TABLE embeddings ADD COLUMN note TEXT", "table 'embeddings' differs"},
      {"missing-index.db", "DROP INDEX embeddings_by_person", "lacks part of the gallery schema"},
      {"bad-name.db",
       "INSERT INTO people(name) VALUES('evil' || char(10) || 'name' || char(27) || '[31mRED');"
       "INSERT INTO embeddings(person, vector) VALUES(last_insert_rowid(), (SELECT vector FROM embeddings LIMIT 1))",
       "'evil\\x0aname\\x1b[31mRED', a name enroll refuses"},
      {"bad-model-name.db", "UPDATE model SET name = 'face' || char(27) || '[2J'", "names its model"},
  };
  for (const auto& [name, statements, why] : hostile) refused_after(name, statements, why);
  CHECK_THROWS_WITH(Gallery::open(dir / "new.db", "face", 0), Catch::Contains("embedding size must be in 1..65536"));
  CHECK_FALSE(std::filesystem::exists(dir / "new.db"));

  const auto text = dir / "notes.txt";
  std::ofstream(text) << "just some text that is long enough\n";
  refused(text, "not a SQLite file", [&] { return Gallery::open(text, "face", dim); });

  const auto old_format = dir / "old.gallery";
  Gallery memory("face", dim);
  memory.enroll("ann", embedding_of(0, 0));
  memory.save(old_format);
  refused(old_format, "gallery import", [&] { return Gallery::open(old_format, "face", dim); });

  const auto empty = dir / "empty.db";
  std::ofstream(empty).close();
  refused(empty, "empty database", [&] { return Gallery::open(empty); });

  CHECK_THROWS_AS(Gallery::open(dir / "absent.db"), siamese::FileError);
}

TEST_CASE("A gallery database locked by another process is a typed error after the retries", "[gallery][store][errors]") {
  fixtures::TempDir dir;
  const auto file = dir / "locked.db";
  siamese::GalleryStoreOptions quick;
  quick.busy_timeout = std::chrono::milliseconds(50);
  quick.attempts = 2;
  auto gallery = Gallery::open(file, "face", dim, quick);
  sqlite3* holder = nullptr;
  REQUIRE(sqlite3_open(file.c_str(), &holder) == SQLITE_OK);
  REQUIRE(sqlite3_exec(holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  CHECK_THROWS_AS(gallery.enroll("ann", embedding_of(0, 0)), siamese::GalleryBusyError);
  CHECK(gallery.size() == 0);  // readers are not blocked by a writer in WAL mode
  sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(holder);
  gallery.enroll("ann", embedding_of(0, 0));
  CHECK(gallery.size() == 1);
}
