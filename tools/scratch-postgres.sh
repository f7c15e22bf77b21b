#!/usr/bin/env bash
# A scratch PostgreSQL 15 server for tests and benchmarks: data, log and Unix socket in DIR,
# no TCP port, no fsync. initdb refuses root: as root, the server runs as the `postgres`
# account (Debian's postgresql-15 creates it), so DIR must be reachable by it (under /tmp).
#
#   scratch-postgres.sh start DIR [durable|tls PORT]
#                                   initialise DIR on first use, then start the server. The
#                                   superuser `postgres` is trusted on the socket; the role
#                                   `secret` must give its password ("s3cret pass"); the
#                                   database `gallery` is owned by it. `durable`: with fsync,
#                                   as a real server runs (for benchmarks; tests go without).
#                                   `tls PORT`: also on 127.0.0.1:PORT, TLS only, with a
#                                   self-signed certificate for 127.0.0.1 (DIR/server.crt).
#   scratch-postgres.sh stop DIR    stop it ("fast": connections cut, transactions rolled back)
#   scratch-postgres.sh psql DIR DATABASE   run the SQL on standard input as `postgres`
#
# URL: postgresql://USER[:PASSWORD]@<DIR with / written %2F>:5432/DATABASE (with `tls PORT`:
# :PORT, or postgresql://USER@127.0.0.1:PORT/DATABASE?sslmode=...)
# Exits 3, saying why, where the server binaries are missing.
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
command=$1 dir=$2
fsync=off tls=()
[ "${3:-}" = durable ] && fsync=on
port=5432 listen="''"
[ -f "$dir/port" ] && port=$(cat "$dir/port")
if [ ! -x "$bin/pg_ctl" ]; then
  echo "PostgreSQL 15 server binaries not found (Debian: apt-get install postgresql-15)" >&2
  exit 3
fi
as_server() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case $command in
  start)
    if [ ! -d "$dir/data" ]; then
      mkdir -p "$dir"
      chmod 777 "$dir"
      as_server "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -N -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
      printf 'local all secret scram-sha-256\nlocal all all trust\n' >"$dir/data/pg_hba.conf"
      fresh=1
    fi
    if [ "${3:-}" = tls ]; then
      if [ ! -f "$dir/server.crt" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
          -keyout "$dir/server.key" -out "$dir/server.crt" 2>/dev/null
        chmod 644 "$dir/server.crt"
        [ "$(id -u)" -eq 0 ] && chown postgres "$dir/server.key"
        chmod 600 "$dir/server.key"
        printf 'hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n' >>"$dir/data/pg_hba.conf"
      fi
      tls=(-c ssl=on -c "ssl_cert_file=$dir/server.crt" -c "ssl_key_file=$dir/server.key")
      port=$4 listen=127.0.0.1
    fi
    echo "$port" >"$dir/port"
    as_server "$bin/pg_ctl" -D "$dir/data" -w -t 60 -l "$dir/server.log" \
      -o "-c listen_addresses=$listen -k $dir -p $port -c fsync=$fsync -c max_connections=100 ${tls[*]}" start >/dev/null
    if [ -n "${fresh:-}" ]; then
      as_server "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE secret LOGIN PASSWORD 's3cret pass'" -c "CREATE DATABASE gallery OWNER secret" >/dev/null
    fi
    ;;
  stop)
    as_server "$bin/pg_ctl" -D "$dir/data" -w -t 60 -m fast stop >/dev/null
    ;;
  psql)
    as_server env PGOPTIONS="-c client_min_messages=warning" "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres \
      -d "${3:-postgres}" >/dev/null
    ;;
  *)
    echo "usage: scratch-postgres.sh start|stop|psql DIR [DATABASE]" >&2
    exit 2
    ;;
esac
