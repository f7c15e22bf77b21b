#!/usr/bin/env python3
"""Writes the seeds of the gallery_database fuzzer: small gallery databases laid out exactly as
GalleryStore creates them (tests/test_fuzz_corpus.cpp checks that each one opens), with 512-byte
pages so that the fuzzer's mutations reach every structure of the file.

Usage: tests/fuzz/make_gallery_database_seeds.py [FOLDER (tests/fuzz/corpus/gallery_database)]
"""
import os
import sqlite3
import struct
import sys

SCHEMA = [
    "CREATE TABLE model (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL,"
    " embedding_size INTEGER NOT NULL, generation INTEGER NOT NULL, last_rewrite INTEGER NOT NULL)",
    "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE embeddings (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " person INTEGER NOT NULL REFERENCES people(id), vector BLOB NOT NULL, source TEXT, content_hash INTEGER)",
    "CREATE INDEX embeddings_by_person ON embeddings(person)",
]
APPLICATION_ID = 0x5347414C  # "SGAL"
SCHEMA_VERSION = 1


def write(path, dim, people, wal):
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size = 512")
    for statement in SCHEMA:
        db.execute(statement)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.execute("INSERT INTO model VALUES(1, 'seed-model', ?, ?, 0)", (dim, len(people)))
    for p, (name, rows) in enumerate(people):
        db.execute("INSERT INTO people(name) VALUES(?)", (name,))
        person = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()[0]
        for r in range(rows):
            vector = struct.pack(f"<{dim}f", *[float(p + 1) if i == (p + r) % dim else 0.0 for i in range(dim)])
            db.execute("INSERT INTO embeddings(person, vector, source, content_hash) VALUES(?, ?, ?, ?)",
                       (person, vector, f"{name}_{r}.jpg", 1000 * p + r))
    db.commit()
    if wal:
        db.execute("PRAGMA journal_mode = WAL")
    db.close()


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "gallery_database")
    os.makedirs(folder, exist_ok=True)
    write(os.path.join(folder, "three-people.db"), 4, [("ann", 1), ("Björk", 2), ("cyd", 1)], wal=False)
    write(os.path.join(folder, "two-people-wal.db"), 8, [("dan", 2), ("eve", 1)], wal=True)


if __name__ == "__main__":
    main()
