#!/bin/sh
# Runs once, when the postgres container first initialises its data directory (mounted into
# /docker-entrypoint-initdb.d by docker-compose.yml). The image's POSTGRES_USER is a superuser;
# the vault gets its own role instead: it owns its database and nothing more (no superuser, no
# CREATEDB, no CREATEROLE, no replication, no row-security bypass), so a compromised vault
# container cannot read the server's files or run programs on it (COPY ... PROGRAM), make
# roles or databases, or grant itself more; and no other role may connect to the vault's
# database. tests/deploy/test_least_privilege.py runs this file against a real PostgreSQL.
#
#   VAULT_DB_USER      the vault's role (default vault)
#   VAULT_DB_NAME      its database (default vault)
#   VAULT_DB_PASSWORD  its password; or VAULT_DB_PASSWORD_FILE, a file holding it
set -eu
user="${VAULT_DB_USER:-vault}"
db="${VAULT_DB_NAME:-vault}"
if [ -n "${VAULT_DB_PASSWORD_FILE:-}" ]; then
    password=$(cat "$VAULT_DB_PASSWORD_FILE")
else
    password="${VAULT_DB_PASSWORD:?set VAULT_DB_PASSWORD (or VAULT_DB_PASSWORD_FILE) for the vault role}"
fi
# psql's :'name' and :"name" quote the values, so no password or name can break out of SQL.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v user="$user" -v db="$db" -v password="$password" <<'SQL'
CREATE ROLE :"user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"user";
SQL
# PostgreSQL 15+ gives the public schema to the database owner (pg_database_owner): the
# vault's migrations create their tables there and nobody else may.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "$db" \
    -c "REVOKE ALL ON SCHEMA public FROM PUBLIC"
echo "postgres init: role $user (no superuser) owns database $db"
