#!/usr/bin/env bash
# Everything `make demo` / `make test` need on a fresh Debian machine.
# Idempotent and quiet when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: socat (PTYs for the emulator), lua5.3 (the 64-bit-integer
# C Lua the vector suite runs on), udev (serialport's port listing calls
# udevadm), libusb (node-hid's native module links it), and five independent
# implementations the tests check our output against: oathtool (OATH Toolkit
# codes), python3-pskc (reads our PSKC files), xmllint (RFC 6030's schema),
# xmlsec1 (verifies the XML Signature of a signed PSKC file), and
# pskc-utils' csv2pskc (writes the sparse files the bank must accept).
need=()
command -v socat >/dev/null || need+=(socat)
command -v lua5.3 >/dev/null || need+=(lua5.3)
command -v udevadm >/dev/null || need+=(udev)
dpkg -s libusb-1.0-0 >/dev/null 2>&1 || need+=(libusb-1.0-0)
command -v oathtool >/dev/null || need+=(oathtool)
command -v xmllint >/dev/null || need+=(libxml2-utils)
command -v xmlsec1 >/dev/null || need+=(xmlsec1)
/usr/bin/python3 -c 'import pskc' 2>/dev/null || need+=(python3-pskc)
command -v csv2pskc >/dev/null || need+=(pskc-utils)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# npm ci when the lock file changed since the last install (prepare builds build/node).
stamp=node_modules/.fobkit-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "setup: npm ci" >&2
  npm ci --no-fund --no-audit --loglevel=error
  touch "$stamp"
fi
