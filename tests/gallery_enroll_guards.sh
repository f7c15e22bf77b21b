#!/usr/bin/env bash
# `gallery` as a user meets it: the same photo enrolled twice is one row; a face the gallery
# identifies as someone else is refused, naming them, unless --allow-lookalike; a folder of
# people enrolls in one run and a second run skips every photo; identify names every face of a
# group photo, with the open-set decision it used.
# Usage: gallery_enroll_guards.sh GALLERY MODEL PHOTOS WORKDIR
set -euo pipefail
gallery=$1 model=$2 photos=$3 work=$4
rm -rf "$work" && mkdir -p "$work/people/obama" "$work/people/biden"
db=$work/g.db
expect() {  # expect PATTERN OUTPUT: fail, showing OUTPUT, unless it matches
  grep -qE "$1" <<<"$2" || { echo "expected /$1/ in:"; echo "$2"; exit 1; }
}
out=$("$gallery" enroll "$db" obama "$photos/obama.jpg" --model "$model" 2>&1)
expect "enrolled 1 photo" "$out"
out=$("$gallery" enroll "$db" obama "$photos/obama.jpg" --model "$model" 2>&1)
expect "enrolled 0 photo.*skipped 1 already enrolled" "$out"
if out=$("$gallery" enroll "$db" biden "$photos/obama.jpg" --model "$model" 2>&1); then
  echo "enrolling Obama's photo as biden was accepted:"; echo "$out"; exit 1
fi
expect "refused: a face of 'biden' is identified as 'obama'.*--allow-lookalike" "$out"
out=$("$gallery" list "$db")
expect "1 embeddings" "$out"
out=$("$gallery" enroll "$db" biden "$photos/biden.jpg" --model "$model" 2>&1)
expect "enrolled 1 photo" "$out"
out=$("$gallery" identify "$db" "$photos/two_people.jpg" --model "$model" 2>&1)
expect "decision: distance-ratio <= [0-9.]+ \(FPIR 0.0100 for 2 people" "$out"
expect "faces: +2" "$out"
[ "$(grep -c 'known:  yes' <<<"$out")" -eq 2 ] || { echo "two faces known expected:"; echo "$out"; exit 1; }
expect "person: obama" "$out"
expect "person: biden" "$out"
out=$("$gallery" identify "$db" "$photos/two_people.jpg" --model "$model" --largest --json 2>&1)
expect '"gallery_people": 2' "$out"
[ "$(grep -c '"box"' <<<"$out")" -eq 1 ] || { echo "one face expected with --largest:"; echo "$out"; exit 1; }

# A folder: ROOT/<person>/<photos> and ROOT/<person>.jpg, into a new gallery; then again.
cp "$photos/obama.jpg" "$photos/obama2.jpg" "$work/people/obama/"
cp "$photos/biden.jpg" "$work/people/biden/"
cp "$photos/biden2.jpg" "$work/people/joe.jpg"
out=$("$gallery" enroll "$work/folder.db" --folder "$work/people" --model "$model" 2>&1)
# joe.jpg is Biden under another name: refused, naming biden.
expect "enrolled 3 photo\(s\) of 2 people.*refused 1" "$out"
expect "refused joe: .*identified as 'biden'" "$out"
out=$("$gallery" enroll "$work/folder.db" --folder "$work/people" --model "$model" 2>&1)
expect "enrolled 0 photo.*skipped 3 already enrolled" "$out"
echo "gallery guards: ok"
