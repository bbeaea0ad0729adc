#!/bin/sh
# One backup round of what the bucket does not hold (docs/deployment.md "Backup and restore"):
# the catalog (pg_dump, custom format) and the files outside catalog and bucket: the keyring,
# the ledger signing keys and the checkpoint witness. The bucket itself is mirrored by the
# backup-bucket service. Each round lands in $BACKUP_DIR/<UTC time>/ with a SHA256SUMS file,
# appears only when complete (written as .partial, then renamed), and rounds older than
# $BACKUP_KEEP_DAYS are removed: footage deleted from the vault stays recoverable from these
# backups for at most that many days (its wrapped data key and KEK are in them until then).
#
#   BACKUP_DATABASE_URL  libpq URL of the catalog (postgresql://vault@postgres:5432/vault);
#                        the password from PGPASSWORD or PGPASSFILE, not in the URL
#   VAULT_HOME           the vault's data directory, mounted read-only (keyring, keys, witness)
#   BACKUP_DIR           where rounds go (a volume to copy off site, or an off-site mount)
#   BACKUP_KEEP_DAYS     rounds kept (default 7)
# Exit status 0 when the round is complete; anything else leaves no round behind.
# tests/deploy/test_backup_schedule.py runs this file against a real PostgreSQL.
set -eu
: "${BACKUP_DATABASE_URL:?set BACKUP_DATABASE_URL}"
: "${VAULT_HOME:?set VAULT_HOME}"
: "${BACKUP_DIR:?set BACKUP_DIR}"
keep="${BACKUP_KEEP_DAYS:-7}"
umask 077  # the round holds keys: readable by the backup user only

stamp=$(date -u +%Y%m%dT%H%M%SZ)
round="$BACKUP_DIR/$stamp"
work="$round.partial"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

pg_dump --format=custom --file="$work/catalog.dump" --dbname="$BACKUP_DATABASE_URL"
# Key files after the dump: a key rotated in between is in the copy (old data keys that the
# dump still wraps with the previous key stay readable through the keyring's retired keys).
for name in keyring.json ledger-signing.key ledger-signing.key.next ledger-signing.key.retired; do
    if [ -f "$VAULT_HOME/$name" ]; then
        cp -p "$VAULT_HOME/$name" "$work/$name"
    fi
done
if [ -d "$VAULT_HOME/checkpoints" ]; then
    cp -pR "$VAULT_HOME/checkpoints" "$work/checkpoints"
fi
chmod -R go= "$work"  # cp -p kept each source's mode; a round is private whatever they were
(cd "$work" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS)
mv "$work" "$round"
trap - EXIT
find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '20*Z' -mtime "+$keep" \
    -exec rm -rf {} +
echo "backup: $round complete"
