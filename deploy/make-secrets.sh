#!/bin/sh
# Make the secrets docker-compose.yml mounts, one file each, in ./secrets/ (or $1): random
# values, written once (an existing file is kept, so re-running never changes a password a
# running stack uses). The directory is 0700: only you read it on the host; the files are 0644
# inside it so each container's own user (vault 10001, redis, postgres) can read its mount.
# Back the directory up with the keys (docs/deployment.md "Backup and restore").
#   VAULT_S3_ACCESS_KEY   the vault's MinIO user name (default evidence-vault-app), as in .env
set -eu
dir="${1:-secrets}"
app_user="${VAULT_S3_ACCESS_KEY:-evidence-vault-app}"
umask 022
mkdir -p "$dir"
chmod 0700 "$dir"

random() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40; }
# keep NAME VALUE: write the file unless it exists; print the value in force.
keep() {
    if [ ! -s "$dir/$1" ]; then
        printf '%s' "$2" > "$dir/$1"
    fi
    cat "$dir/$1"
}

keep MINIO_ROOT_USER "minio-root" >/dev/null
keep MINIO_ROOT_PASSWORD "$(random)" >/dev/null
keep postgres_superuser_password "$(random)" >/dev/null
keep EVIDENCE_VAULT_S3_SECRET_KEY "$(random)" >/dev/null
db_password=$(keep vault_db_password "$(random)")
redis_password=$(keep redis_password "$(random)")
keep EVIDENCE_VAULT_DATABASE_URL "postgresql+psycopg://vault:$db_password@postgres:5432/vault" >/dev/null
keep EVIDENCE_VAULT_QUEUE_URL "redis://:$redis_password@redis:6379/0" >/dev/null
keep redis.conf "requirepass $redis_password
" >/dev/null
chmod 0644 "$dir"/*
echo "secrets in $dir/ (the vault's MinIO user is $app_user: set VAULT_S3_ACCESS_KEY=$app_user in .env)"
