#!/usr/bin/env bash
# A copy of the workplace tool shared/tools/containers/setup.sh, kept here so that CI on a fresh
# clone does not depend on a folder beside the checkout.
# Installs podman and builds a local stand-in for the base image python:3.11-slim, since no
# container registry can be reached here. Idempotent: a second run only checks.
#   usage: setup.sh            (takes about 1-2 minutes the first time)
# The stand-in is Debian 12 (minbase) + Debian's python3.11 + pip from PyPI, tagged
# docker.io/library/python:3.11-slim. Differences from the official image: Python 3.11.2 lives in
# /usr/bin (with /usr/local/bin/python and python3 links), packages go to dist-packages, and the
# machine's extra CA certificates are installed so that pip inside builds reaches PyPI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
TAG=docker.io/library/python:3.11-slim
ROOTFS=$CT_ROOT/rootfs

need=()
for c in podman runc debootstrap; do command -v $c >/dev/null || need+=("$c"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap uidmap >/dev/null
fi
if podman image exists "$TAG"; then echo "base image $TAG present"; exit 0; fi

# Use the same Debian mirror that apt on this machine uses.
sources=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true)
mirror=$(printf '%s\n' "$sources" | awk '/^(URIs:|deb )/ && !/security/ {print $2; exit}')
secmirror=$(printf '%s\n' "$sources" | awk '/^(URIs:|deb )/ && /security/ {print $2; exit}')
[ -n "$mirror" ] || { echo "setup.sh: no Debian mirror found in apt's sources" >&2; exit 1; }

if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
  rm -rf "$ROOTFS"
  debootstrap --variant=minbase bookworm "$ROOTFS" "$mirror" >"$CT_ROOT/debootstrap.log" 2>&1 \
    || { tail -20 "$CT_ROOT/debootstrap.log"; exit 1; }
  {
    echo "deb $mirror bookworm main"
    echo "deb $mirror bookworm-updates main"
    [ -n "$secmirror" ] && echo "deb $secmirror bookworm-security main"
  } > "$ROOTFS/etc/apt/sources.list"
  mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/" 2>/dev/null || true
  cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
  mount -t proc proc "$ROOTFS/proc"
  trap 'umount "$ROOTFS/proc" 2>/dev/null || true' EXIT
  chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
     LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive sh -ec '
    apt-get update -q
    apt-get install -y -q --no-install-recommends python3 python3-venv python3-pip ca-certificates netbase curl
    update-ca-certificates
    rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
    python3 -m pip install -q --no-cache-dir --upgrade pip setuptools wheel
    test -x /usr/local/bin/pip
    ln -sf /usr/bin/python3 /usr/local/bin/python3
    ln -sf /usr/bin/python3 /usr/local/bin/python
    apt-get clean; rm -rf /var/lib/apt/lists/* /root/.cache /usr/share/doc/* /usr/share/man/*' \
    >"$CT_ROOT/chroot.log" 2>&1 || { tail -20 "$CT_ROOT/chroot.log"; exit 1; }
  umount "$ROOTFS/proc"; trap - EXIT
  rm -f "$ROOTFS/etc/resolv.conf"
fi

tar -C "$ROOTFS" -c . | podman import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change 'ENV PYTHON_VERSION=3.11.2' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' - "$TAG" >/dev/null
podman tag "$TAG" localhost/python:3.11-slim
echo "base image $TAG built"
