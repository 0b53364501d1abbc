#!/usr/bin/env bash
# A PostgreSQL server of the project's own for the tests, on loopback only.
#
#   bash scripts/postgres.sh start    # install if needed, start, print the URL
#   bash scripts/postgres.sh stop     # stop it (nothing to do if not running)
#   bash scripts/postgres.sh url      # print the URL
#   bash scripts/postgres.sh status   # say whether it runs; exit 0 if it does
#   bash scripts/postgres.sh pin CPUS # keep the running server on these CPUs
#                                     # (as taskset -c lists them, or all)
#
# The server binaries come from Debian's `postgresql` package (installed with
# apt-get when /usr/lib/postgresql/*/bin has none). The cluster lives in
# .facepay/postgres/data: made once with initdb, reused after; its test
# database is made again, empty, whenever `start` starts the server. It
# listens on 127.0.0.1 only, port $FACEPAY_PG_PORT (default 54329, or the next free one
# when another server, such as a second checkout's, holds it), with trust
# auth and fsync on. The package's own cluster (port 5432) is neither used nor touched.
#
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# system user facepay-pg (made when absent) and runs under runuser.
#
# `start` and `url` print one line on stdout, the URL
# postgres://<superuser>@127.0.0.1:<port>/facepay_test; everything else goes
# to stderr.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pgroot="$root/.facepay/postgres"
port="${FACEPAY_PG_PORT:-54329}"
database=facepay_test
pg_user_for_root=facepay-pg
if [[ -d "$pgroot" ]]; then
    pgroot="$(cd "$pgroot" && pwd -P)" # it may link elsewhere (see ensure_root_user)
fi

say() { echo "postgres.sh: $*" >&2; }
die() { say "$*"; exit 1; }

usage() {
    echo "usage: bash scripts/postgres.sh start|stop|url|status|pin CPUS" >&2
    exit 2
}

# The newest /usr/lib/postgresql/<version>/bin that has initdb and pg_ctl.
find_bindir() {
    local dir found=""
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && found="$dir"
    done
    echo "$found"
}

as_admin() {
    if [[ "$(id -u)" == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "PostgreSQL is not installed, and installing it needs root or sudo: apt-get install postgresql"
    fi
}

install_postgres() {
    say "installing Debian's postgresql package"
    local install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
        -o DPkg::Lock::Timeout=300 postgresql)
    if ! as_admin "${install[@]}" >&2; then
        say "install failed; updating the package lists and trying again"
        as_admin env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300 >&2
        as_admin "${install[@]}" >&2
    fi
}

# The OS user that owns (or will own) the cluster; it is also its superuser.
owner() {
    if [[ -d "$pgroot/data" ]]; then
        stat -c %U "$pgroot/data"
    elif [[ "$(id -u)" == 0 ]]; then
        echo "$pg_user_for_root"
    else
        id -un
    fi
}

# Runs a command as the cluster's owner, from inside .facepay/postgres, without
# the lock's descriptor (a server started with it would hold the lock forever).
as_owner() {
    local user
    user="$(owner)"
    if [[ "$user" == "$(id -un)" ]]; then
        (cd "$pgroot" && "$@" 9>&-)
    elif [[ "$(id -u)" == 0 ]]; then
        (cd "$pgroot" && runuser -u "$user" -- "$@" 9>&-)
    else
        die "the cluster in $pgroot belongs to $user; run this as $user or as root"
    fi
}

ensure_root_user() {
    [[ "$(id -u)" == 0 ]] || return 0
    if ! id -u "$pg_user_for_root" >/dev/null 2>&1; then
        say "adding system user $pg_user_for_root"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$pg_user_for_root"
    fi
    # A new cluster is theirs; one made before keeps its owner (see owner()).
    if [[ ! -d "$pgroot/data" ]]; then
        chown -R "$pg_user_for_root:$pg_user_for_root" "$pgroot"
    fi
    local user
    user="$(owner)"
    if ! runuser -u "$user" -- test -w "$pgroot"; then
        [[ ! -d "$pgroot/data" ]] || die "$user cannot reach $pgroot (is a directory above it closed to other users?)"
        # A checkout under a closed directory (such as root's home): the
        # cluster goes to a directory of its own that .facepay/postgres links to.
        local aside
        aside="$(mktemp -d "${TMPDIR:-/tmp}/facepay-pg.XXXXXX")"
        chmod 755 "$aside"
        chown "$user:$user" "$aside"
        rm -rf "$pgroot"
        ln -s "$aside" "$pgroot"
        pgroot="$aside"
        say "$user cannot reach the checkout; the cluster goes to $aside (linked from .facepay/postgres)"
    fi
}

# The port the running server listens on (line 4 of postmaster.pid), else ours.
current_port() {
    local pidfile="$pgroot/data/postmaster.pid" p=""
    if running && [[ -r "$pidfile" ]]; then
        p="$(sed -n 4p "$pidfile")"
    fi
    echo "${p:-$port}"
}

# Whether nothing listens on 127.0.0.1:$1.
port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running() {
    local bindir
    bindir="$(find_bindir)"
    [[ -n "$bindir" && -f "$pgroot/data/PG_VERSION" ]] || return 1
    # pg_ctl will not run as root, not even for status.
    as_owner "$bindir/pg_ctl" status -D "$pgroot/data" >/dev/null 2>&1
}

url() {
    echo "postgres://$(owner)@127.0.0.1:$(current_port)/$database"
}

start() {
    local bindir started=0
    bindir="$(find_bindir)"
    if [[ -z "$bindir" ]]; then
        install_postgres
        bindir="$(find_bindir)"
        [[ -n "$bindir" ]] || die "no initdb and pg_ctl under /usr/lib/postgresql/*/bin after installing"
    fi

    if [[ -L "$pgroot" && ! -d "$pgroot" ]]; then
        rm "$pgroot" # it linked to a directory that is gone
    fi
    mkdir -p "$pgroot"
    pgroot="$(cd "$pgroot" && pwd -P)"
    ensure_root_user

    if [[ ! -f "$pgroot/data/PG_VERSION" ]]; then
        say "creating the cluster in .facepay/postgres/data ($("$bindir/postgres" --version))"
        rm -rf "$pgroot/data" "$pgroot/data.new"
        # Made aside and moved in, so an interrupted initdb leaves no half cluster.
        as_owner "$bindir/initdb" -D "$pgroot/data.new" -A trust -E UTF8 --locale=C --no-instructions >&2
        cat >>"$pgroot/data.new/postgresql.conf" <<EOF

# facepay: a test server on loopback only (scripts/postgres.sh); the port
# and socket directory are also given on each start.
listen_addresses = '127.0.0.1'
port = $port
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
        mv "$pgroot/data.new" "$pgroot/data"
    fi

    # A server that has just died can still look alive for a moment (its
    # process not yet reaped): wait until it answers or is seen gone.
    local tries=0
    while running && ! "$bindir/pg_isready" -q -h 127.0.0.1 -p "$(current_port)" -t 2; do
        (( ++tries < 50 )) || die "the server seems to run but does not answer on 127.0.0.1:$(current_port); see .facepay/postgres/log"
        sleep 0.2
    done
    if running; then
        say "already running on port $(current_port)"
    else
        # A Unix socket path longer than the kernel's limit (107 bytes) fails
        # the start; the tests connect over TCP, so then there is none.
        local sockets="$pgroot"
        if (( ${#pgroot} + 20 > 107 )); then
            sockets=""
        fi
        local tries_port=0
        while ! port_free "$port"; do
            (( ++tries_port < 20 )) || die "ports $((port - 19)) to $port are all taken"
            say "port $port is taken; trying $((port + 1))"
            port=$((port + 1))
        done
        say "starting on 127.0.0.1:$port"
        started=1
        if ! as_owner "$bindir/pg_ctl" -w -t 60 -D "$pgroot/data" -l "$pgroot/log" \
            -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$sockets'" \
            start >&2; then
            say "start failed; the end of .facepay/postgres/log:"
            tail -n 20 "$pgroot/log" >&2 || true
            exit 1
        fi
    fi

    local p user psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1)
    p="$(current_port)"
    user="$(owner)"
    [[ -x "$bindir/psql" ]] || psql=(psql -X -q -v ON_ERROR_STOP=1)
    # Each test makes a schema of its own and leaves it behind. A server
    # started here begins with an empty test database, or the schemas of
    # every earlier run pile up in the catalog.
    if [[ "$started" == 1 ]]; then
        "${psql[@]}" -h 127.0.0.1 -p "$p" -U "$user" -d postgres \
            -c "drop database if exists $database" >&2
    fi
    if [[ -z "$("${psql[@]}" -h 127.0.0.1 -p "$p" -U "$user" -d postgres -tAc \
        "select 1 from pg_database where datname = '$database'")" ]]; then
        say "creating database $database"
        "${psql[@]}" -h 127.0.0.1 -p "$p" -U "$user" -d postgres -c "create database $database" >&2
    fi
    url
}

stop() {
    if running; then
        say "stopping"
        as_owner "$(find_bindir)/pg_ctl" -w -t 60 -m fast -D "$pgroot/data" stop >&2
    else
        say "not running"
    fi
}

status() {
    if running; then
        say "running: $(url)"
    else
        say "not running"
        return 3
    fi
}

# Keeps the running server on the CPUs listed: its postmaster, every process
# it runs now, and every backend it starts later (a forked process inherits
# the mask). A benchmark run with `taskset -c` on the other CPUs then has a
# database on cores of its own, as in production. `pin all` undoes it.
pin() {
    local cpus="$1" postmaster child
    running || die "not running"
    [[ "$cpus" == all ]] && cpus="0-$(( $(nproc --all) - 1 ))"
    postmaster="$(sed -n 1p "$pgroot/data/postmaster.pid")"
    for child in "$postmaster" $(pgrep -P "$postmaster"); do
        taskset -a -p -c "$cpus" "$child" >/dev/null
    done
    say "running on CPUs $cpus"
}

if [[ "${1:-}" == pin ]]; then
    [[ $# == 2 ]] || usage
    pin "$2"
    exit 0
fi
[[ $# == 1 ]] || usage
case "$1" in
    start|stop)
        # One at a time: two test runs starting together would race initdb.
        mkdir -p "$root/.facepay"
        if { exec 9>>"$root/.facepay/postgres.lock"; } 2>/dev/null; then
            flock -w 300 9 || die "another postgres.sh start or stop has held .facepay/postgres.lock for 5 minutes"
        fi
        "$1"
        ;;
    url) url ;;
    status) status ;;
    *) usage ;;
esac
