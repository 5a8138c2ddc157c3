#!/usr/bin/env bash
# The Kubernetes JSON schemas that deploy/k8s/validate checks the manifests against,
# offline: PyPI's kubernetes-validate ships them (generated from Kubernetes' OpenAPI
# specs, a directory per version, "-strict" ones refusing unknown fields). This takes the
# pinned wheel with pip, checks its sha256, and keeps the strict schemas of the versions
# below under $EDGELOOP_CACHE/k8s-schemas; it prints that directory.
#   deploy/local/k8s-schemas.sh install
source "$(dirname "$0")/lib.sh"
version=1.37.0
sha256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
# The oldest Kubernetes the manifests must apply to and the newest the wheel knows.
kube_versions=(1.30.0 1.37.0)
dest=$EDGELOOP_CACHE/k8s-schemas/kubernetes-validate-$version

case ${1:-install} in
  install)
    if [[ ! -f $dest/.complete ]]; then
      command -v python3 >/dev/null || apt_install python3
      python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
      tmp=$(mktemp -d)
      trap 'rm -rf "$tmp"' EXIT
      log "downloading kubernetes-validate $version from PyPI (pip)"
      python3 -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
        --cache-dir "$EDGELOOP_CACHE/pip" -d "$tmp" "kubernetes-validate==$version" >&2
      wheel=$tmp/kubernetes_validate-$version-py3-none-any.whl
      [[ -f $wheel ]] || die "pip did not leave $wheel"
      echo "$sha256  $wheel" | sha256sum -c --quiet - >&2 || die "kubernetes-validate $version: sha256 mismatch"
      rm -rf "$dest" && mkdir -p "$dest"
      python3 - "$wheel" "$dest" "${kube_versions[@]}" <<'PY'
import os, sys, zipfile
wheel, dest, versions = sys.argv[1], sys.argv[2], sys.argv[3:]
prefixes = {f"kubernetes_validate/kubernetes-json-schema/v{v}-local-strict/": f"v{v}-local-strict" for v in versions}
n = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        for prefix, sub in prefixes.items():
            if name.startswith(prefix) and name.endswith(".json"):
                out = os.path.join(dest, sub, name[len(prefix):])
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with open(out, "wb") as f:
                    f.write(z.read(name))
                n += 1
for sub in prefixes.values():
    if not os.path.isfile(os.path.join(dest, sub, "_definitions.json")):
        sys.exit(f"the wheel has no {sub}")
print(f"{n} schema files", file=sys.stderr)
PY
      touch "$dest/.complete"
      log "Kubernetes schemas in $dest"
    fi
    echo "$dest" ;;
  *) die "usage: $0 install" ;;
esac
