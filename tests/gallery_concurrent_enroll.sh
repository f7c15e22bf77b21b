#!/usr/bin/env bash
# Seven `gallery enroll` commands into one new gallery database, one first and then six at
# once (as a shell loop with & or six web workers would run them): every enrollment is kept.
# Usage: gallery_concurrent_enroll.sh GALLERY_BINARY MODEL PHOTO_DIR DB
set -euo pipefail
gallery=$1 model=$2 photos=$3 db=$4
rm -f "$db" "$db-wal" "$db-shm"
"$gallery" enroll "$db" first "$photos/obama.jpg" --model "$model"
pids=()
for i in 1 2 3 4 5 6; do
  "$gallery" enroll "$db" "person$i" "$photos/biden.jpg" --model "$model" --allow-lookalike & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done  # set -e: any failed enroll fails the test
people=$("$gallery" list "$db" | tail -n +2 | wc -l)
echo "gallery list: $people people"
[ "$people" -eq 7 ]
