# PostgreSQL for the postgresql scaler tests.
#
# The machine runs PostgreSQL on 127.0.0.1:5432 with trust auth; tests create their own
# databases there (KEDGE_POSTGRESQL_URL). Trust auth accepts any password, so the tests that
# check credentials get a private cluster with password (scram-sha-256) auth on a free port
# (KEDGE_POSTGRESQL_AUTH_URL), started here as the `postgres` user in a temp directory.

postgresql_bindir() {
  local d
  d=$(pg_config --bindir 2>/dev/null) && [ -x "$d/initdb" ] && { echo "$d"; return; }
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

postgresql_start() {
  if ! wait_for 10 pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "services: PostgreSQL is not accepting connections on 127.0.0.1:5432" >&2
    return 1
  fi
  export_env KEDGE_POSTGRESQL_URL "postgres://postgres@127.0.0.1:5432/postgres"
  # The database examples/scalers/postgresql.yaml queries: 17 pending jobs of 25.
  local psql=(psql -h 127.0.0.1 -p 5432 -U postgres -v ON_ERROR_STOP=1 -qAt)
  if [ "$("${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'kedge_example'")" != 1 ]; then
    "${psql[@]}" -d postgres -c "CREATE DATABASE kedge_example" >/dev/null
  fi
  "${psql[@]}" -d kedge_example >/dev/null <<'SQL'
CREATE TABLE IF NOT EXISTS jobs (id serial PRIMARY KEY, state text NOT NULL);
INSERT INTO jobs (state)
  SELECT CASE WHEN g % 3 = 0 THEN 'done' ELSE 'pending' END FROM generate_series(1, 25) g
  WHERE NOT EXISTS (SELECT 1 FROM jobs);
SQL

  local conf="$KEDGE_STATE/postgresql-auth.conf"
  if running postgresql-auth && [ -f "$conf" ]; then
    # shellcheck disable=SC1090
    . "$conf"
  else
    local bindir dir port password
    bindir=$(postgresql_bindir) || { echo "services: PostgreSQL server binaries not found" >&2; return 1; }
    dir=$(mktemp -d /tmp/kedge-pg-auth.XXXXXX)
    chmod 755 "$dir"   # the server runs as `postgres`, which must enter the directory
    install -d -o postgres -g postgres "$dir/pg"
    password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf '%s\n' "$password" > "$dir/pwfile"
    chown postgres "$dir/pwfile"
    runuser -u postgres -- "$bindir/initdb" -D "$dir/pg/data" -U postgres -A scram-sha-256 \
      --pwfile="$dir/pwfile" -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
      echo "services: initdb failed, see $dir/initdb.log" >&2; return 1; }
    rm -f "$dir/pwfile"
    runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 30 \
      -o "-p $port -c listen_addresses=127.0.0.1 -k $dir/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null || { echo "services: the password-auth PostgreSQL did not start, see $dir/pg/server.log" >&2; return 1; }
    remember postgresql-auth "$(head -n 1 "$dir/pg/data/postmaster.pid")"
    printf 'PG_AUTH_DIR=%q\nPG_AUTH_BINDIR=%q\nPG_AUTH_PORT=%q\nPG_AUTH_PASSWORD=%q\n' \
      "$dir" "$bindir" "$port" "$password" > "$conf"
    # shellcheck disable=SC1090
    . "$conf"
  fi
  export_env KEDGE_POSTGRESQL_AUTH_URL "postgres://postgres:${PG_AUTH_PASSWORD}@127.0.0.1:${PG_AUTH_PORT}/postgres"
}

postgresql_stop() {
  local conf="$KEDGE_STATE/postgresql-auth.conf"
  [ -f "$conf" ] || return 0
  # shellcheck disable=SC1090
  . "$conf"
  if running postgresql-auth; then
    runuser -u postgres -- "$PG_AUTH_BINDIR/pg_ctl" -D "$PG_AUTH_DIR/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -f "$KEDGE_STATE/postgresql-auth.pid" "$conf"
  case "$PG_AUTH_DIR" in /tmp/kedge-pg-auth.*) rm -rf "$PG_AUTH_DIR" ;; esac
}
