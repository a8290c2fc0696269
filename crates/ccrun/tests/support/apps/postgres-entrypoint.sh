#!/bin/bash
# The postgres test image's entrypoint, doing what the official image's
# docker-entrypoint.sh does for a first start (without its init scripts or
# POSTGRES_DB), with util-linux's setpriv for gosu:
# - as root: create $PGDATA and the socket directory, hand them to postgres, and
#   run again as postgres;
# - as postgres, on an empty $PGDATA: initdb with POSTGRES_USER (default postgres)
#   and POSTGRES_PASSWORD, local connections trusted, other hosts logging in with
#   POSTGRES_HOST_AUTH_METHOD (default scram-sha-256; `trust` needs no password),
#   listening on every address;
# - then exec the command, postgres itself.
set -Eeuo pipefail

# No command, or `IMAGE -c key=value`: arguments of postgres.
if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "${1:-}" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	find "$PGDATA" \! -user postgres -exec chown postgres: '{}' +
	chmod 00700 "$PGDATA"
	find /var/run/postgresql \! -user postgres -exec chown postgres: '{}' +
	chmod 03775 /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ "${1:-}" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != 'trust' ]; then
		echo >&2 'error: database is uninitialized and superuser password is not specified.'
		echo >&2 '       Set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust.'
		exit 1
	fi
	args=(--username="${POSTGRES_USER:-postgres}" -D "$PGDATA")
	# The password through a pipe, never in a file or on a command line (the pipe
	# lives as long as the command that names it, hence no variable holds it).
	if [ -n "${POSTGRES_PASSWORD:-}" ]; then
		initdb "${args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD")
	else
		initdb "${args[@]}"
	fi
	printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
