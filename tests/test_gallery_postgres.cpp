// The gallery store on a PostgreSQL server: the SQLite store's scenarios, and the ones only a
// server has (nodes following each other, a restarted server, a refused login). Each test case
// starts a server of its own (postgres_server.hpp) and skips, saying why, without one.

#include "fixtures.hpp"
#include "gallery_scenarios.hpp"
#include "postgres_server.hpp"

#include <catch2/catch.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>
#include <sys/wait.h>
#include <unistd.h>

using siamese::Gallery;
using scenarios::dim;
using scenarios::embedding_of;
using scenarios::exited_cleanly;
using scenarios::person;

namespace {

#define SKIP_WITHOUT_POSTGRES()                                   \
  if (const auto why = fixtures::PostgresServer::unavailable()) { \
    WARN("skipped: " << *why);                                    \
    return;                                                       \
  }

// A photo record whose content hash is unique to (writer, index): enrolling it twice is one row.
std::vector<siamese::EnrolledPhoto> photo_of(int writer, int index) {
  return {{person(writer, index) + ".jpg", static_cast<std::uint64_t>(writer) * 100000 + static_cast<std::uint64_t>(index) + 1}};
}

// One value of a query run straight on the server, as another program would.
std::string query(const std::string& url, const std::string& sql) {
  PGconn* connection = PQconnectdb(url.c_str());
  REQUIRE(PQstatus(connection) == CONNECTION_OK);
  PGresult* result = PQexec(connection, sql.c_str());
  const auto status = PQresultStatus(result);
  INFO(sql << ": " << PQresultErrorMessage(result));
  const bool ok = status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK;
  std::string value = ok && status == PGRES_TUPLES_OK && PQntuples(result) > 0 ? PQgetvalue(result, 0, 0) : "";
  PQclear(result);
  PQfinish(connection);
  REQUIRE(ok);
  return value;
}


// Runs `body` in a child process; its exit status says whether it returned true.
template <class Body>
pid_t spawn(Body body, const char* what) {
  const pid_t child = fork();
  if (child == 0) {
    try {
      _exit(body() ? 0 : 1);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", what, e.what());
      _exit(2);
    }
  }
  return child;
}

}  // namespace

TEST_CASE("A gallery on PostgreSQL keeps enrollments, renames and removals, and tells other nodes", "[gallery][postgres]") {
  SKIP_WITHOUT_POSTGRES();
  fixtures::PostgresServer server;
  const auto url = server.url();
  auto writer = Gallery::open(url, "face", dim);
  auto reader = Gallery::open(url);  // another node
  CHECK(reader.model_name() == "face");
  CHECK(reader.embedding_size() == dim);
  CHECK(reader.size() == 0);
  CHECK_FALSE(reader.store()->may_have_changed());  // nothing committed: no query before a read

  writer.enroll("ann", torch::stack({embedding_of(0, 0), embedding_of(0, 1)}), {{"ann1.jpg", 42}, {"ann2.jpg", std::nullopt}});
  writer.enroll("bob", embedding_of(1, 0));
  // Told by the server, not by polling: the reader learns of the commits within a second.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!reader.store()->may_have_changed() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(reader.size() == 3);
  CHECK(reader.identify(embedding_of(1, 0), 1, 1.0)[0].best() == "bob");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(reader.size() == 3);  // reads any notification that came after the rows
  CHECK_FALSE(reader.store()->may_have_changed());

  // The same photo again is one row: a retried enrollment is never doubled.
  CHECK(writer.enroll("ann", embedding_of(0, 0), {{"ann1-again.jpg", 42}}) == 0);
  CHECK(reader.store()->people_with_photo(42) == std::vector<std::string>{"ann"});

  // Removals and renames reach the reader in order, with enrollments between them.
  CHECK(writer.rename("bob", "rob"));
  CHECK_FALSE(writer.rename("nobody", "x"));
  CHECK_THROWS_AS(writer.rename("ann", "rob"), siamese::Error);
  CHECK(writer.remove("ann"));
  CHECK_FALSE(writer.remove("ann"));
  writer.enroll("ann", embedding_of(2, 0));  // a new ann after the old one's removal
  CHECK(reader.people() == std::vector<std::pair<std::string, std::size_t>>{{"ann", 1}, {"rob", 1}});
  CHECK(reader.identify(embedding_of(1, 0), 1, 1.0)[0].best() == "rob");
  CHECK(reader.identify(embedding_of(2, 0), 1, 1.0)[0].best() == "ann");
  CHECK_FALSE(reader.identify(embedding_of(0, 0), 1, 1.0)[0].known);

  // A batch is one transaction: a bad entry anywhere leaves the database as it was.
  CHECK_THROWS_AS(writer.enroll({{"dan", embedding_of(3, 0), {}}, {"eve", torch::zeros({dim + 1}), {}}}), siamese::ShapeError);
  CHECK_THROWS_AS(reader.store()->enroll({{"dan", torch::zeros({2, dim}, torch::kFloat64), {}}}), siamese::ShapeError);
  CHECK(reader.size() == 2);
  CHECK(query(url, "SELECT count(*) FROM siamese_gallery.people WHERE name = 'dan'") == "0");

  // Photo records are kept, and travel with enrollments() to another engine and back.
  writer.enroll("cyd", embedding_of(4, 0), {{"cyd.jpg", 7}});
  CHECK(query(url, "SELECT source || ' ' || content_hash FROM siamese_gallery.embeddings ORDER BY id DESC LIMIT 1") == "cyd.jpg 7");
  fixtures::TempDir dir;
  auto sqlite = Gallery::open(dir / "copy.db", "face", dim);
  sqlite.enroll(writer.store()->enrollments());
  CHECK(sqlite.people() == reader.people());
  CHECK(sqlite.store()->people_with_photo(7) == std::vector<std::string>{"cyd"});
  server.psql("CREATE DATABASE back", "postgres");
  auto back = Gallery::open(server.url("back"), "face", dim);
  back.enroll(sqlite.store()->enrollments());
  back.enroll(sqlite.store()->enrollments());  // again: the hashed rows are not doubled
  CHECK(back.size() == sqlite.size() + 2);     // ...the two rows without a hash are
  CHECK(back.store()->people_with_photo(7) == std::vector<std::string>{"cyd"});
  CHECK(reader.store()->integrity_check() == "ok");
  CHECK(reader.store()->location() == url);
}

TEST_CASE("Four nodes with two writers each lose and double nothing while others identify", "[gallery][postgres][faults]") {
  SKIP_WITHOUT_POSTGRES();
  fixtures::PostgresServer server;
  const auto url = server.url();
  constexpr int nodes = 4, writers_per_node = 2, each = 100, writers = nodes * writers_per_node;
  Gallery::open(url, "face", dim);  // the schema, made once
  std::vector<pid_t> children;
  for (int w = 0; w < writers; ++w) {
    children.push_back(spawn(
        [&] {
          auto gallery = Gallery::open(url, "face", dim);
          for (int i = 0; i < each; ++i) gallery.enroll(person(w, i), embedding_of(w, i), photo_of(w, i));
          return true;
        },
        "writer"));
  }
  // Each node identifies while the writers run, and must end holding every row exactly once.
  std::vector<pid_t> followers;
  for (int n = 0; n < nodes; ++n) {
    followers.push_back(spawn(
        [&] {
          auto gallery = Gallery::open(url);
          std::size_t seen = 0;
          const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
          while (seen < static_cast<std::size_t>(writers * each) && std::chrono::steady_clock::now() < deadline) {
            const auto now = gallery.size();
            if (now < seen) return false;  // the gallery only grows
            seen = now;
            const auto found = gallery.identify(embedding_of(3, 0), 1, 1.0)[0];
            if (found.known && found.best() != person(3, 0)) return false;
          }
          const auto people = gallery.people();
          return people.size() == static_cast<std::size_t>(writers * each) &&
                 std::all_of(people.begin(), people.end(), [](const auto& p) { return p.second == 1; }) &&
                 gallery.identify(embedding_of(7, 99), 1, 1.0)[0].best() == person(7, 99);
        },
        "node"));
  }
  int clean = 0;
  for (const auto child : children) clean += exited_cleanly(child);
  CHECK(clean == writers);
  int followed = 0;
  for (const auto child : followers) followed += exited_cleanly(child);
  CHECK(followed == nodes);
  CHECK(query(url, "SELECT count(*) FROM siamese_gallery.embeddings") == std::to_string(writers * each));
  CHECK(query(url, "SELECT count(DISTINCT person) FROM siamese_gallery.embeddings") == std::to_string(writers * each));
  // Ids grow in commit order: the generations along the ids never go back.
  CHECK(query(url, "SELECT count(*) FROM (SELECT generation < lag(generation) OVER (ORDER BY id) AS back"
                   " FROM siamese_gallery.embeddings) s WHERE back") == "0");
  CHECK(Gallery::open(url).store()->integrity_check() == "ok");
}

TEST_CASE("A writer killed inside a transaction on the server leaves every earlier enrollment", "[gallery][postgres][faults]") {
  SKIP_WITHOUT_POSTGRES();
  fixtures::PostgresServer server;
  const auto url = server.url();
  Gallery::open(url, "face", dim).enroll("before", embedding_of(0, 0));
  SECTION("killed holding the model's lock, halfway through an enrollment") {
    scenarios::kill_inside_transaction([&] {
      PGconn* connection = PQconnectdb(url.c_str());
      PQclear(PQexec(connection,
                     "BEGIN; SELECT generation FROM siamese_gallery.model FOR UPDATE;"
                     "INSERT INTO siamese_gallery.people(name) VALUES ('half');"));
    });
  }
  SECTION("killed while enrolling as fast as it can") { scenarios::kill_while_enrolling(url); }
  scenarios::check_after_killed_writer(url);
}

TEST_CASE("A server stopped and restarted mid-run: writers retry, nodes reconnect, nothing lost or doubled",
          "[gallery][postgres][faults]") {
  SKIP_WITHOUT_POSTGRES();
  fixtures::PostgresServer server;
  const auto url = server.url();
  constexpr int each = 100;
  std::vector<std::string> events;
  siamese::GalleryStoreOptions told;
  told.on_event = [&](const std::string& line) { events.push_back(line); };
  auto follower = Gallery::open(url, "face", dim, told);
  int progress[2];
  REQUIRE(pipe(progress) == 0);
  // The writer retries what fails with GalleryUnavailableError: safe, for every row has a hash.
  const pid_t writer = spawn(
      [&] {
        close(progress[0]);
        std::unique_ptr<Gallery> gallery;
        for (int i = 0; i < each;) {
          try {
            if (!gallery) gallery = std::make_unique<Gallery>(Gallery::open(url, "face", dim));
            gallery->enroll(person(0, i), embedding_of(0, i), photo_of(0, i));
            (void)!write(progress[1], &i, sizeof i);
            ++i;
          } catch (const siamese::GalleryUnavailableError&) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
        }
        return true;
      },
      "writer");
  close(progress[1]);
  int last = -1;
  for (int i = 0; i < 30; ++i) REQUIRE(read(progress[0], &last, sizeof last) == sizeof last);
  server.stop();
  // While the server is down the node answers from what it holds, and says so.
  for (int i = 0; i < 5; ++i) {
    CHECK_NOTHROW(follower.identify(embedding_of(0, 0), 1, 1.0));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  CHECK_THROWS_AS(follower.enroll("during", embedding_of(5, 0)), siamese::GalleryUnavailableError);
  server.start();
  while (read(progress[0], &last, sizeof last) == sizeof last) {
  }
  close(progress[0]);
  CHECK(exited_cleanly(writer));
  CHECK(last == each - 1);
  CHECK(query(url, "SELECT count(*) FROM siamese_gallery.embeddings") == std::to_string(each));
  CHECK(query(url, "SELECT count(DISTINCT person) FROM siamese_gallery.embeddings") == std::to_string(each));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (follower.size() < static_cast<std::size_t>(each) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(follower.size() == static_cast<std::size_t>(each));
  CHECK(follower.identify(embedding_of(0, each - 1), 1, 1.0)[0].best() == person(0, each - 1));
  const auto said = [&](const std::string& words) {
    return std::any_of(events.begin(), events.end(), [&](const std::string& e) { return e.find(words) != std::string::npos; });
  };
  INFO("events: " << events.size());
  CHECK(said("cannot reconnect yet"));
  CHECK(said("reconnected"));
  CHECK(said("caught up after reconnecting"));
  CHECK(dynamic_cast<siamese::PostgresGalleryStore&>(*follower.store()).reconnections() >= 1);
}

TEST_CASE("Logins: a refused one is typed, passwords are masked, .pgpass files work", "[gallery][postgres][errors]") {
  SKIP_WITHOUT_POSTGRES();
  fixtures::PostgresServer server;
  const auto wrong = server.url("gallery", "secret", "wrong-pass");
  CHECK_THROWS_AS(Gallery::open(wrong, "face", dim), siamese::GalleryLoginError);
  CHECK_THROWS_WITH(Gallery::open(wrong, "face", dim), Catch::Contains("secret:***@") && !Catch::Contains("wrong-pass"));
  CHECK_THROWS_AS(Gallery::open(server.url("gallery", "nobody"), "face", dim), siamese::GalleryLoginError);

  const auto right = server.url("gallery", "secret", "s3cret%20pass");
  auto gallery = Gallery::open(right, "face", dim);
  gallery.enroll("ann", embedding_of(0, 0));
  CHECK(gallery.store()->location() == server.url("gallery", "secret", "***"));
  CHECK_THROWS_WITH(Gallery::open(right, "other", dim), Catch::Contains("secret:***@") && !Catch::Contains("s3cret"));

  // No password in the URL: libpq reads PGPASSFILE, as every PostgreSQL program does.
  fixtures::TempDir dir;
  const auto passfile = dir / "pgpass";
  std::ofstream(passfile) << "*:*:*:secret:s3cret pass\n";
  std::filesystem::permissions(passfile, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  setenv("PGPASSFILE", passfile.c_str(), 1);
  CHECK(Gallery::open(server.url("gallery", "secret")).size() == 1);
  unsetenv("PGPASSFILE");
  CHECK_THROWS_AS(Gallery::open(server.url("gallery", "secret")), siamese::GalleryLoginError);

  // A server that is not there.
  const auto gone = "postgresql://postgres@%2Fnonexistent-siamese-socket:5432/gallery";
  CHECK_THROWS_AS(Gallery::open(gone, "face", dim), siamese::GalleryUnavailableError);
}

TEST_CASE("sslmode works as in any libpq program: TLS required, the server's certificate verified", "[gallery][postgres][errors]") {
  SKIP_WITHOUT_POSTGRES();
  fixtures::PostgresServer server(20000 + static_cast<int>(getpid() % 20000));  // TLS only on 127.0.0.1
  const auto required = server.tcp_url("gallery", "sslmode=require");
  Gallery::open(required, "face", dim).enroll("ann", embedding_of(0, 0));
  CHECK(query(required, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "t");
  CHECK(Gallery::open(server.tcp_url("gallery", "sslmode=verify-full&sslrootcert=" + server.certificate())).size() == 1);
  // The server takes no connection without TLS; a certificate no known authority signed is refused.
  CHECK_THROWS_AS(Gallery::open(server.tcp_url("gallery", "sslmode=disable")), siamese::GalleryLoginError);
  CHECK_THROWS_WITH(Gallery::open(server.tcp_url("gallery", "sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt")),
                    Catch::Contains("127.0.0.1") && Catch::Contains("certificate"));
}

TEST_CASE("Other models' galleries, foreign schemas and hostile rows on a server are refused unchanged",
          "[gallery][postgres][errors]") {
  SKIP_WITHOUT_POSTGRES();
  fixtures::PostgresServer server;
  const auto good = server.url();
  Gallery::open(good, "face", dim).enroll("ann", embedding_of(0, 0));
  const auto count = [&](const std::string& url) { return query(url, "SELECT count(*) FROM siamese_gallery.embeddings"); };
  CHECK_THROWS_WITH(Gallery::open(good, "other", dim), Catch::Contains("cannot be used with 'other'"));
  CHECK_THROWS_WITH(Gallery::open(good, "face", 9), Catch::Contains("(9-d)"));
  CHECK(count(good) == "1");

  // A copy of the good database that `statements` changed, opened and refused, unchanged.
  int copies = 0;
  const auto refused_after = [&](const std::string& statements, const std::string& why) {
    const auto name = "copy" + std::to_string(++copies);
    server.psql("CREATE DATABASE " + name + " TEMPLATE gallery");
    server.psql(statements, name);
    const auto url = server.url(name);
    const auto before = count(url);
    INFO(statements);
    CHECK_THROWS_AS(Gallery::open(url), siamese::GalleryError);
    CHECK_THROWS_WITH(Gallery::open(url), Catch::Contains(url) && Catch::Contains(why));
    CHECK(count(url) == before);
  };
  refused_after("COMMENT ON SCHEMA siamese_gallery IS 'siamese gallery schema 2'", "schema version 2; this library reads version 1 (made by a newer siamese)");
  refused_after("COMMENT ON SCHEMA siamese_gallery IS 'my things'", "another application");
  refused_after("UPDATE siamese_gallery.embeddings SET vector = '\\x0102'", "holds 2 bytes");
  refused_after("UPDATE siamese_gallery.embeddings SET vector = overlay(vector placing '\\x0000c07f'::bytea from 1)", "non-finite");
  refused_after("SET session_replication_role = replica; DELETE FROM siamese_gallery.people", "without a person");
  refused_after("DELETE FROM siamese_gallery.model", "no model record");
  refused_after("UPDATE siamese_gallery.model SET embedding_size = 0", "claims embedding size 0");
  refused_after("UPDATE siamese_gallery.model SET name = 'face' || chr(27) || '[2J'", "names its model");
  refused_after("INSERT INTO siamese_gallery.people(name) VALUES ('evil' || chr(10) || 'name');"
                "INSERT INTO siamese_gallery.embeddings(person, generation, vector) SELECT currval('siamese_gallery.people_id_seq'), 1, vector"
                " FROM siamese_gallery.embeddings LIMIT 1",
                "'evil\\x0aname', a name enroll refuses");
  refused_after("CREATE FUNCTION siamese_gallery.wipe() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM"
                " siamese_gallery.embeddings; RETURN NULL; END $$;"
                "CREATE TRIGGER wipe AFTER INSERT ON siamese_gallery.embeddings EXECUTE FUNCTION siamese_gallery.wipe()",
                "which this library does not create");
  refused_after("CREATE FUNCTION public.wipe() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;"
                "CREATE TRIGGER wipe BEFORE INSERT ON siamese_gallery.embeddings FOR EACH ROW EXECUTE FUNCTION public.wipe()",
                "trigger 'wipe on embeddings'");
  refused_after("CREATE RULE hide AS ON INSERT TO siamese_gallery.embeddings DO INSTEAD NOTHING", "rule 'hide on embeddings'");
  refused_after("ALTER TABLE siamese_gallery.people ENABLE ROW LEVEL SECURITY", "row security 'people'");
  refused_after("CREATE VIEW siamese_gallery.everyone AS SELECT * FROM siamese_gallery.people", "relation 'everyone'");
  refused_after("ALTER TABLE siamese_gallery.embeddings ADD COLUMN note text", "column 'embeddings.note'");
  refused_after("ALTER TABLE siamese_gallery.embeddings ALTER COLUMN generation SET DEFAULT 0", "differs");
  refused_after("DROP TABLE siamese_gallery.rewrites", "lacks part of the gallery schema");
  server.psql("CREATE DATABASE other_things");
  server.psql("CREATE TABLE notes(text text)", "other_things");
  CHECK_THROWS_WITH(Gallery::open(server.url("other_things")), Catch::Contains("holds no siamese gallery"));
  CHECK(query(server.url("other_things"), "SELECT count(*) FROM pg_namespace WHERE nspname = 'siamese_gallery'") == "0");
  CHECK_THROWS_WITH(Gallery::open(good, "face", 0), Catch::Contains("embedding size must be in 1..65536"));
}

TEST_CASE("A gallery lock held by another session is a typed error after the retries", "[gallery][postgres][errors]") {
  SKIP_WITHOUT_POSTGRES();
  fixtures::PostgresServer server;
  const auto url = server.url();
  siamese::GalleryStoreOptions quick;
  quick.busy_timeout = std::chrono::milliseconds(50);
  quick.attempts = 2;
  auto gallery = Gallery::open(url, "face", dim, quick);
  PGconn* holder = PQconnectdb(url.c_str());
  REQUIRE(PQstatus(holder) == CONNECTION_OK);
  PQclear(PQexec(holder, "BEGIN; SELECT generation FROM siamese_gallery.model FOR UPDATE"));
  CHECK_THROWS_AS(gallery.enroll("ann", embedding_of(0, 0)), siamese::GalleryBusyError);
  CHECK(gallery.size() == 0);  // readers do not wait for a writer
  PQclear(PQexec(holder, "ROLLBACK"));
  PQfinish(holder);
  gallery.enroll("ann", embedding_of(0, 0));
  CHECK(gallery.size() == 1);
}

TEST_CASE("Server URLs: told from paths, passwords masked wherever they are", "[gallery][postgres]") {
  CHECK(siamese::is_gallery_server("postgresql://u@h/db"));
  CHECK(siamese::is_gallery_server("postgres://h/db"));
  CHECK_FALSE(siamese::is_gallery_server("people.db"));
  CHECK_FALSE(siamese::is_gallery_server("/data/postgresql://odd"));
  CHECK(siamese::displayed_location("postgresql://ann:hunter2@db.example:5432/faces?sslmode=require") ==
        "postgresql://ann:***@db.example:5432/faces?sslmode=require");
  CHECK(siamese::displayed_location("postgresql://db.example/faces?user=ann&password=hunter2&sslmode=verify-full") ==
        "postgresql://db.example/faces?user=ann&password=***&sslmode=verify-full");
  CHECK(siamese::displayed_location("postgresql://ann:p%40ss@h/db?password=x") == "postgresql://ann:***@h/db?password=***");
  CHECK(siamese::displayed_location("postgresql://ann@h/db") == "postgresql://ann@h/db");
  CHECK(siamese::displayed_location("postgresql://h/db?apassword=1") == "postgresql://h/db?apassword=1");
  CHECK(siamese::displayed_location("people.db") == "people.db");
}
