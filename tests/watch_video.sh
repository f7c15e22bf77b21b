#!/usr/bin/env bash
# `watch` as a user meets it: two people enrolled, a video of them entering, crossing and
# leaving; every frame and every third frame detected; one track each, named right, with a
# best chip and an annotated video; the same frames as a folder of JPEG files; hostile sources
# refused with a message naming them.
# Usage: watch_video.sh WATCH GALLERY MAKE_SCENE_VIDEO MODEL PHOTOS WORKDIR
set -euo pipefail
watch=$1 gallery=$2 make_video=$3 model=$4 photos=$5 work=$6
rm -rf "$work" && mkdir -p "$work"
expect() {  # expect PATTERN OUTPUT: fail, showing OUTPUT, unless it matches
  grep -qE "$1" <<<"$2" || { echo "expected /$1/ in:"; echo "$2"; exit 1; }
}
db=$work/g.db
"$gallery" enroll "$db" obama "$photos/obama2.jpg" --model "$model" >/dev/null 2>&1
"$gallery" enroll "$db" biden "$photos/biden2.jpg" --model "$model" >/dev/null 2>&1
"$make_video" "$(dirname "$model")" "$photos" "$work/crossing.avi" "$work/frames"

for every in 1 3; do
  "$watch" "$db" "$work/crossing.avi" --model "$model" --every $every --events "$work/events-$every.jsonl" \
    --chips "$work/chips-$every" --annotate "$work/annotated-$every.avi" 2>"$work/stderr-$every.txt"
  events=$(cat "$work/events-$every.jsonl")
  left=$(grep '"event":"left"' <<<"$events")
  [ "$(wc -l <<<"$left")" -eq 2 ] || { echo "two tracks expected with --every $every:"; echo "$events"; exit 1; }
  expect '"known":true.*"person":"obama"' "$(grep '"track":1}' <<<"$left")"
  expect '"known":true.*"person":"biden"' "$(grep '"track":2}' <<<"$left")"
  [ "$(grep -c '"event":"appeared"' <<<"$events")" -eq 2 ] || { echo "two appearances expected:"; echo "$events"; exit 1; }
  if grep -q '"event":"identified"' <<<"$events"; then echo "a track changed identity with --every $every:"; echo "$events"; exit 1; fi
  [ -s "$work/chips-$every/track-1.jpg" ] && [ -s "$work/chips-$every/track-2.jpg" ] || { echo "best chips missing"; exit 1; }
  [ -s "$work/annotated-$every.avi" ] || { echo "annotated video missing"; exit 1; }
  expect "100 frames in .* 2 tracks" "$(cat "$work/stderr-$every.txt")"
done

out=$("$watch" "$db" "$work/frames" --model "$model" 2>&1)
[ "$(grep -c '"event":"left"' <<<"$out")" -eq 2 ] || { echo "two tracks expected from the folder of frames:"; echo "$out"; exit 1; }
expect '"person":"obama".*"track":1}' "$(grep '"event":"left"' <<<"$out")"

# Hostile sources: each refused, naming it, with exit code 1.
head -c 20000 "$work/crossing.avi" >"$work/cut.avi"
: >"$work/empty.avi"
echo "not a video" >"$work/notes.avi"
for source in "$work/cut.avi" "$work/empty.avi" "$work/notes.avi" "$work/missing.avi" 7; do
  status=0
  out=$("$watch" "$db" "$source" --model "$model" 2>&1 >/dev/null) || status=$?
  [ "$status" -eq 1 ] || { echo "exit code $status (1 expected) for $source:"; echo "$out"; exit 1; }
  expect "watch: .*$(basename "$source")" "$out"
done
echo "watch: two tracks named right at --every 1 and 3 and from a folder of frames; hostile sources refused"
