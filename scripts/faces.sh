#!/usr/bin/env bash
# Makes the labelled face photos available and prints their directory.
#
# Uses ../shared/data/faces when it is there; otherwise fetches the same
# photos from the packages that ship them (two PyPI sdists and Debian's dlib
# source package) into .facepay/faces. A second run does nothing.
#
# It also lays out .facepay/verify/<person>/ (links to the photos) for
# `facepay eval verify`: dlib's five Johns, Obama (three full-face photos)
# and Biden.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="$root/../shared/data/faces"

layout_verify() {
    local faces="$1" verify="$root/.facepay/verify"
    rm -rf "$verify"
    mkdir -p "$verify/Barack_Obama" "$verify/Joe_Biden"
    for person in "$faces"/johns/*/; do
        ln -s "$(cd "$person" && pwd)" "$verify/$(basename "$person")"
    done
    for photo in obama obama2 obama3; do
        ln -s "$faces/face_recognition/$photo.jpg" "$verify/Barack_Obama/$photo.jpg"
    done
    ln -s "$faces/face_recognition/biden.jpg" "$verify/Joe_Biden/biden.jpg"
    echo "$faces"
}

if [[ -d "$shared/johns" && -d "$shared/face_recognition" ]]; then
    layout_verify "$(cd "$shared" && pwd)"
    exit 0
fi

out="$root/.facepay/faces"
if [[ -f "$out/.complete" ]]; then
    layout_verify "$out"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out/face_recognition" "$out/insightface" "$out/johns"

python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary=:all: \
    --dest "$work" face_recognition==1.3.0 insightface==2.1 >&2
tar -xzf "$work"/face_recognition-1.3.0.tar.gz -C "$work"
cp "$work"/face_recognition-1.3.0/tests/test_images/{obama,obama2,obama3,biden,obama_partial_face,obama_partial_face2}.jpg \
    "$out/face_recognition/"
tar -xzf "$work"/insightface-2.1.tar.gz -C "$work"
cp "$work"/insightface-2.1/insightface/data/images/{t1.jpg,Tom_Hanks_54745.png} "$out/insightface/"

# Debian ships dlib's example faces only in its source package.
if ! ls "$work"/dlib_*.orig.tar.* >/dev/null 2>&1; then
    # Same mirrors as the system's, with source entries, in a private apt state.
    sources="$work/apt"
    mkdir -p "$sources/parts" "$sources/lists/partial"
    touch "$sources/sources.list"
    if [[ -f /etc/apt/sources.list ]]; then
        sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$sources/sources.list"
    fi
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$file" ]] && sed 's/^Types: deb$/Types: deb-src/' "$file" >"$sources/parts/$(basename "$file")"
    done
    apt_options=(-o "Dir::Etc::SourceList=$sources/sources.list" -o "Dir::Etc::SourceParts=$sources/parts"
        -o "Dir::State::Lists=$sources/lists" -o "APT::Sandbox::User=root")
    apt-get "${apt_options[@]}" update -qq >&2
    (cd "$work" && apt-get "${apt_options[@]}" source --download-only -qq dlib >&2)
fi
tar -xjf "$work"/dlib_*.orig.tar.bz2 -C "$work" --wildcards '*/examples/johns/*'
cp -r "$work"/dlib-*/examples/johns/* "$out/johns/"
touch "$out/.complete"
layout_verify "$out"
