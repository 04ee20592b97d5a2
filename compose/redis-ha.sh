#!/bin/sh
# One member of the `ha` profile's Sentinel set: `redis-ha.sh master|replica|sentinel`.
#
# Writes the member's configuration into its data folder on the first start only (Redis and the
# sentinels rewrite their file as roles change -- a failover, a demoted master coming back --
# and that must survive a restart), then runs the server in the foreground. Passwords go into
# the file (mode 600), never onto a command line that `ps` shows.
#
# Environment: ANNOUNCE_HOST (this member's name on the network), MASTER_HOST (the first
# master), MASTER_NAME, REDIS_PASSWORD (data nodes; empty = none), SENTINEL_PASSWORD (sentinels;
# empty = none), DATA_DIR (default /data), PORT and MASTER_PORT (default 6379; a sentinel 26379),
# QUORUM (2), DOWN_AFTER_MS (5000), FAILOVER_TIMEOUT_MS (60000), BIND (all interfaces),
# REDIS_SERVER (redis-server).
set -eu

role="${1:?usage: redis-ha.sh master|replica|sentinel}"
data="${DATA_DIR:-/data}"
server="${REDIS_SERVER:-redis-server}"
master_port="${MASTER_PORT:-6379}"
conf="$data/$role.conf"
umask 077

if [ ! -s "$conf" ]; then
    case "$role" in
    master | replica)
        {
            echo "port ${PORT:-6379}"
            echo "bind ${BIND:-* -::*}"
            # Reachable only on the compose network (no published port); set a password too.
            echo "protected-mode no"
            echo "dir $data"
            # AOF, fsync'd every second, as the single-node stack does.
            echo "appendonly yes"
            echo "appendfsync everysec"
            # What the sentinels and the app are told to connect to after a failover.
            echo "replica-announce-ip $ANNOUNCE_HOST"
            if [ -n "${REDIS_PASSWORD:-}" ]; then
                echo "requirepass $REDIS_PASSWORD"
                echo "masterauth $REDIS_PASSWORD"
            fi
            if [ "$role" = replica ]; then
                echo "replicaof $MASTER_HOST $master_port"
            fi
        } >"$conf"
        ;;
    sentinel)
        {
            echo "port ${PORT:-26379}"
            echo "bind ${BIND:-* -::*}"
            echo "protected-mode no"
            echo "dir $data"
            echo "sentinel resolve-hostnames yes"
            echo "sentinel announce-hostnames yes"
            echo "sentinel announce-ip $ANNOUNCE_HOST"
            echo "sentinel monitor $MASTER_NAME $MASTER_HOST $master_port ${QUORUM:-2}"
            echo "sentinel down-after-milliseconds $MASTER_NAME ${DOWN_AFTER_MS:-5000}"
            echo "sentinel failover-timeout $MASTER_NAME ${FAILOVER_TIMEOUT_MS:-60000}"
            echo "sentinel parallel-syncs $MASTER_NAME 1"
            if [ -n "${REDIS_PASSWORD:-}" ]; then
                echo "sentinel auth-pass $MASTER_NAME $REDIS_PASSWORD"
            fi
            if [ -n "${SENTINEL_PASSWORD:-}" ]; then
                echo "requirepass $SENTINEL_PASSWORD"
                echo "sentinel sentinel-pass $SENTINEL_PASSWORD"
            fi
        } >"$conf"
        ;;
    *)
        echo "redis-ha.sh: unknown role $role (master, replica or sentinel)" >&2
        exit 2
        ;;
    esac
fi

if [ "$role" = sentinel ]; then
    exec "$server" "$conf" --sentinel
fi
exec "$server" "$conf"
