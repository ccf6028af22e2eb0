#!/usr/bin/env bash
# Create random MinIO root credentials for docker-compose.yml as Docker secret
# files (0600) under .lifeline/compose/. Existing files are kept. Prints no secret.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=.lifeline/compose
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
if [[ ! -s "$dir/minio_root_user" ]]; then
  user="$(head -c 1024 /dev/urandom | tr -dc 'A-Z0-9' | cut -c1-18)"
  printf 'LL%s' "$user" > "$dir/minio_root_user"
fi
if [[ ! -s "$dir/minio_root_password" ]]; then
  head -c 30 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$dir/minio_root_password"
fi
echo "compose secrets ready in $dir (minio_root_user, minio_root_password)"
