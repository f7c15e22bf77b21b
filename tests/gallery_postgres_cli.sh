#!/usr/bin/env bash
# `gallery` on a PostgreSQL server of its own: enroll, identify, list, rename and remove with a
# URL where a database path goes; import from the server into a SQLite file and back; a
# refused login; the password never printed. Skips, saying why, without PostgreSQL 15.
# Usage: gallery_postgres_cli.sh GALLERY MODEL PHOTOS
set -euo pipefail
gallery=$1 model=$2 photos=$3
server="$(dirname "$0")/../tools/scratch-postgres.sh"
if [ ! -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
  echo "skipped: PostgreSQL 15 server binaries not found (Debian: apt-get install postgresql-15)"
  exit 0
fi
work=$(mktemp -d)
trap 'bash "$server" stop "$work" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
bash "$server" start "$work"
echo "CREATE DATABASE faces OWNER secret; CREATE DATABASE faces2 OWNER secret;" | bash "$server" psql "$work"
socket=$(printf %s "$work" | sed 's|/|%2F|g')
url="postgresql://secret:s3cret%20pass@$socket:5432/faces"

# Runs `gallery ARGS...`; prints its output; fails if the password shows in it.
run() {
  local out status=0
  out=$("$gallery" "$@" 2>&1) || status=$?
  printf '%s\n' "$out"
  if grep -q s3cret <<<"$out"; then echo "FAIL: the password was printed"; exit 1; fi
  return $status
}
expect() {  # expect PATTERN OUTPUT
  if ! grep -qE "$1" <<<"$2"; then echo "FAIL: expected /$1/"; exit 1; fi
}

out=$(run enroll "$url" obama "$photos/obama.jpg" --model "$model")
expect "enrolled 1 photo\(s\) of 1 people.*in postgresql://secret:\*\*\*@" "$out"
out=$(run enroll "$url" biden "$photos/biden.jpg" --model "$model")
expect "enrolled 1 photo" "$out"
out=$(run enroll "$url" obama "$photos/obama.jpg" --model "$model")
expect "enrolled 0 photo\(s\).*skipped 1 already enrolled" "$out"
out=$(run identify "$url" "$photos/obama2.jpg" --model "$model" --json)
expect '"person": "obama"' "$out"
out=$(run list "$url")
expect "biden	1" "$out"
expect "obama	1" "$out"

# From the server into a SQLite file, and from the file into another database on the server.
out=$(run import "$url" "$work/copy.db")
expect "imported 2 people, 2 embeddings \(with their photo records\) from postgresql://secret:\*\*\*@" "$out"
url2="postgresql://secret:s3cret%20pass@$socket:5432/faces2"
out=$(run import "$work/copy.db" "$url2")
expect "imported 2 people, 2 embeddings" "$out"
out=$(run import "$work/copy.db" "$url2")
expect "imported 2 people, 0 embeddings.*2 were there already" "$out"
out=$(run identify "$url2" "$photos/biden2.jpg" --model "$model" --json)
expect '"person": "biden"' "$out"

out=$(run rename "$url" biden joe)
expect "renamed biden" "$out"
out=$(run remove "$url" obama)
expect "removed obama" "$out"
out=$(run list "$url")
expect "^joe	1$" "$out"

# Refused: a wrong password (typed, masked), and a database that holds no gallery.
status=0
out=$(run list "postgresql://secret:wrong-pass@$socket:5432/faces") || status=$?
[ "$status" -ne 0 ] || { echo "FAIL: a wrong password was let in"; exit 1; }
expect "refused the login" "$out"
if grep -q wrong-pass <<<"$out"; then echo "FAIL: the wrong password was printed"; exit 1; fi
status=0
out=$(run list "postgresql://postgres@$socket:5432/postgres") || status=$?
[ "$status" -ne 0 ] || { echo "FAIL: a database without a gallery was listed"; exit 1; }
expect "holds no siamese gallery" "$out"
echo "gallery on PostgreSQL: every step passed"
