#!/bin/bash
# The redis test image's entrypoint, doing what the official image's
# docker-entrypoint.sh does, with util-linux's setpriv for gosu.
set -euo pipefail

# `IMAGE --appendonly yes` or `IMAGE /path/redis.conf`: arguments of redis-server.
if [ "$#" -gt 0 ] && { [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; }; then
	set -- redis-server "$@"
fi

# Started as root: hand the working directory (/data, often a fresh volume that
# root owns) to redis, then run again as redis.
if [ "${1:-}" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --init-groups "${BASH_SOURCE[0]}" "$@"
fi

# The data files are redis's own (the official image's umask).
if [ "$(umask)" = '0022' ]; then
	umask 0077
fi

exec "$@"
