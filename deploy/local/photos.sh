#!/usr/bin/env bash
# Real photographs for the colour test and benchmark data (pkg/colourscenes), installed
# once into $EDGELOOP_CACHE/photos (the folder it prints):
#   - scikit-image's bundled pictures, from its pinned wheel on PyPI (pip, sha256 checked):
#     the astronaut, coffee, cat, motorcycle, rocket, … — the "home" site and part of the
#     "new" one;
#   - the photographs among Debian's lomiri-wallpapers-20.04 (apt-get download, unpacked
#     with dpkg-deb; nothing is installed into the system) — the rest of the "new" site.
# Either source may fail (no network, no apt): the script says so and goes on, and the
# generator falls back to procedural backgrounds for a site left without photographs.
#   deploy/local/photos.sh install
source "$(dirname "$0")/lib.sh"
skimage_version=0.26.0
# One wheel for every machine (only its pictures are used), so its checksum is fixed.
skimage_wheel=scikit_image-$skimage_version-cp312-cp312-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl
skimage_sha256=7df650e79031634ac90b11e64a9eedaf5a5e06fcd09bcd03a34be01745744466
skimage_photos=(astronaut.png coffee.png chelsea.png motorcycle_left.png rocket.jpg camera.png brick.png
  grass.png coins.png ihc.png gravel.png hubble_deep_field.jpg retina.jpg moon.png)
debian_package=lomiri-wallpapers-20.04
debian_photos=(Kleiber_by_Lukas_Baubkus.jpg Infinite-Sea_by_Aury88.jpg Fossa_by_Jasper_Roks.jpg
  Painting-Colors_by__herobrine7gamer.jpg)
dest=$EDGELOOP_CACHE/photos

skimage() {
  [[ -f $dest/.skimage-$skimage_version ]] && return 0
  command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || {
    log "no python3 with pip: scikit-image's pictures skipped"
    return 1
  }
  local tmp
  tmp=$(mktemp -d)
  log "downloading scikit-image $skimage_version from PyPI (pip) for its pictures"
  if ! python3 -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
    --platform manylinux_2_28_x86_64 --python-version 3.12 --implementation cp --abi cp312 \
    --cache-dir "$EDGELOOP_CACHE/pip" -d "$tmp" "scikit-image==$skimage_version" >&2; then
    log "pip could not download scikit-image: its pictures skipped"
    rm -rf "$tmp"
    return 1
  fi
  echo "$skimage_sha256  $tmp/$skimage_wheel" | sha256sum -c --quiet - >&2 || {
    rm -rf "$tmp"
    die "scikit-image $skimage_version: sha256 mismatch"
  }
  python3 - "$tmp/$skimage_wheel" "$dest" "${skimage_photos[@]}" <<'PY'
import os, sys, zipfile
wheel, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        with open(os.path.join(dest, n), "wb") as f:
            f.write(z.read("skimage/data/" + n))
PY
  rm -rf "$tmp"
  touch "$dest/.skimage-$skimage_version"
}

debian() {
  [[ -f $dest/.debian ]] && return 0
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
    log "no apt-get/dpkg-deb: Debian's wallpapers skipped"
    return 1
  }
  local tmp
  tmp=$(mktemp -d)
  chmod 777 "$tmp" # apt-get download drops root for _apt
  log "downloading Debian's $debian_package (apt-get download; unpacked, not installed)"
  if ! (cd "$tmp" && { apt-get download -qq "$debian_package" >&2 2>/dev/null ||
    { as_root apt-get update -qq >&2 && apt-get download -qq "$debian_package" >&2; }; }); then
    log "apt-get could not download $debian_package: its photographs skipped"
    rm -rf "$tmp"
    return 1
  fi
  dpkg-deb -x "$tmp"/"$debian_package"_*.deb "$tmp/x"
  local n
  for n in "${debian_photos[@]}"; do
    [[ -f $tmp/x/usr/share/backgrounds/$n ]] || { rm -rf "$tmp"; die "$debian_package has no $n"; }
    cp "$tmp/x/usr/share/backgrounds/$n" "$dest/$n"
  done
  rm -rf "$tmp"
  touch "$dest/.debian"
}

case ${1:-install} in
  install)
    mkdir -p "$dest"
    skimage || true
    debian || true
    log "photographs in $dest: $(find "$dest" -maxdepth 1 -type f ! -name '.*' | wc -l) files"
    echo "$dest" ;;
  *) die "usage: $0 install" ;;
esac
