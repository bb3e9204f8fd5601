#!/bin/sh
# Lay out an unpacked Food-11 archive as DEST/<split>/class_NN/*.jpg.
# Usage: layout.sh SRC DEST CLASSES MARKER SPLIT...
# The tutorial's archive holds <split>/<class>_<n>.jpg (possibly under a top folder); an archive
# already in class_NN folders is taken as it is. MARKER is written last: a half-done layout is
# redone on the next run.
set -eu
src=$1 dest=$2 classes=$3 marker=$4
shift 4
for split in "$@"; do
  from=$(find "$src" -maxdepth 3 -type d -name "$split" | head -n 1)
  if [ -z "$from" ]; then
    echo "the archive has no $split folder" >&2
    exit 3
  fi
  i=0
  while [ "$i" -lt "$classes" ]; do
    class=$(printf 'class_%02d' "$i")
    mkdir -p "$dest/$split/$class"
    if [ -d "$from/$class" ]; then
      find "$from/$class" -maxdepth 1 -type f -name '*.jpg' -exec mv -t "$dest/$split/$class" {} +
    fi
    find "$from" -maxdepth 1 -type f -name "${i}_*.jpg" -exec mv -t "$dest/$split/$class" {} +
    i=$((i + 1))
  done
  count=$(find "$dest/$split" -type f -name '*.jpg' | wc -l)
  if [ "$count" -eq 0 ]; then
    echo "no images in the $split split" >&2
    exit 4
  fi
  echo "$split: $count images"
done
date -u +%Y-%m-%dT%H:%M:%SZ > "$dest/$marker"
