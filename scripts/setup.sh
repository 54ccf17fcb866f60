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
# pskc-utils' csv2pskc (writes the sparse files the bank must accept), and
# chromium (the browser the staff-console suite drives through playwright-core;
# neither it nor the tests download a browser) with fonts-ipafont-gothic, a
# Japanese font, so its screenshots of the Japanese console are legible (the
# console itself ships no font: branch PCs have their own).
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
# strace: the durability tests read the fsync and open calls a write makes (test/station/factory-record.test.ts).
command -v strace >/dev/null || need+=(strace)
[ -x /usr/bin/chromium ] || need+=(chromium)
dpkg -s fonts-ipafont-gothic >/dev/null 2>&1 || need+=(fonts-ipafont-gothic)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- lua32: a Lua with NodeMCU's number model (fw-memory) -----------------
# NodeMCU's Lua 5.3 is built with 32-bit integers and 32-bit floats
# (LUA_32BITS); the ESP32 has 32-bit pointers. Debian's own lua5.3 source
# built with -DLUA_32BITS -m32 has all three, so the suite exercises float32
# and collectgarbage("count") approximates the device's heap. Built once into
# build/lua32/ (test/support/lua-vm.ts and tools/bench-memory.ts run
# build/lua32/lua32). A kernel without i386 support (some VMs) runs the same
# binary through qemu-user's qemu-i386.
lua32_dir=build/lua32
lua32=$lua32_dir/lua32
# lua32-heap: the same core behind a heap-tracking allocator (tools/lua32/lua32-heap.c) for `make bench`.
lua32_ok() {
  [ -x "$lua32" ] && [ -x "$lua32_dir/lua32-heap" ] && [ ! tools/lua32/lua32-heap.c -nt "$lua32_dir/lua32-heap-i386" ] &&
    [ "$("$lua32" -e 'local a, b = 1, 0.1 io.write(math.maxinteger, " ", string.format("%.9g", 1/3), " ", string.packsize("T"), " ", collectgarbage("setpause", 110), " ", a // b, " ", tostring((pcall(table.unpack, {}, 1, 13000))))' 2>/dev/null)" = "2147483647 0.333333343 4 110 10 false" ]
}
if ! lua32_ok; then
  lua32_need=()
  dpkg -s gcc-multilib >/dev/null 2>&1 || lua32_need+=(gcc-multilib)
  command -v dpkg-source >/dev/null || lua32_need+=(dpkg-dev)
  # Can this kernel execute i386 binaries? (a static -m32 probe needs no loader)
  lua32_native=0
  if [ ${#lua32_need[@]} -eq 0 ]; then
    mkdir -p "$lua32_dir"
    echo 'int main(void){return 0;}' > "$lua32_dir/probe.c"
    gcc -m32 -static -o "$lua32_dir/probe" "$lua32_dir/probe.c" 2>/dev/null && "$lua32_dir/probe" 2>/dev/null && lua32_native=1
  fi
  [ "$lua32_native" = 1 ] || command -v qemu-i386 >/dev/null || lua32_need+=(qemu-user)
  lua32_src=$(ls -d "$lua32_dir"/src/lua5.3-*/src 2>/dev/null | head -n 1 || true)
  lua32_debsrc=1
  if [ -z "$lua32_src" ] && ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then lua32_debsrc=0; fi
  if [ ${#lua32_need[@]} -gt 0 ] || [ "$lua32_debsrc" = 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "setup: building build/lua32 needs Debian packages ${lua32_need[*]:-(none)} and deb-src apt entries (run as root)" >&2
      exit 1
    fi
    if [ "$lua32_debsrc" = 0 ]; then
      # Source entries beside the machine's own binary entries (same mirror and suites).
      if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed -i -E 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources
      elif [ -f /etc/apt/sources.list ]; then
        sed -i -E 'p; s/^deb (.*)$/deb-src \1/; t; d' /etc/apt/sources.list
      fi
    fi
    echo "setup: for build/lua32: ${lua32_need[*]:-} ${lua32_debsrc/1/}${lua32_debsrc/0/deb-src}" >&2
    apt-get update -qq
    if [ ${#lua32_need[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${lua32_need[@]}" >/dev/null
    fi
    exec "$0" "$@"   # again, now with the packages (re-probes i386 support)
  fi
  if [ -z "$lua32_src" ]; then
    echo "setup: fetching Debian's lua5.3 source" >&2
    rm -rf "$lua32_dir/src" && mkdir -p "$lua32_dir/src"
    (cd "$lua32_dir/src" && apt-get source -qq lua5.3 >/dev/null 2>&1) || {
      echo "setup: apt-get source lua5.3 failed (deb-src entries enabled? apt-get update?)" >&2
      exit 1
    }
    lua32_src=$(ls -d "$lua32_dir"/src/lua5.3-*/src | head -n 1)
  fi
  echo "setup: building $lua32 and lua32-heap (Debian's lua5.3 source, -DLUA_32BITS -m32)" >&2
  # Debian's patches make luaconf.h include this header (the multiarch module path).
  echo '#define DEB_HOST_MULTIARCH "i386-linux-gnu"' > "$lua32_src/lua5.3-deb-multiarch.h"
  # NodeMCU's stack limit, LUAI_MAXSTACK 12000 (components/lua/lua-5.3/luaconf.h:171); luaconf.h
  # defines it without #ifndef, so the line itself is changed (lua32_ok checks it took).
  sed -i 's/^#define LUAI_MAXSTACK\t\t1000000$/#define LUAI_MAXSTACK\t\t12000/' "$lua32_src/luaconf.h"
  # Static, so qemu-i386 needs no i386 loader; no dlopen (C modules are not used).
  # LUAI_GCPAUSE 110: NodeMCU's collector pause (components/lua/lua-5.3/luaconf.h:194).
  # -msse2 -mfpmath=sse: float arithmetic in single precision, as the ESP32's FPU does; i386's
  # default x87 keeps excess precision (1 // 0.1 gave 9.0, the board 10.0; lua32_ok checks it).
  (cd "$lua32_src" && gcc -std=gnu99 -O2 -m32 -msse2 -mfpmath=sse -static -DLUA_32BITS -DLUAI_GCPAUSE=110 -DLUA_USE_POSIX \
    -o lua32 $(ls *.c | grep -v '^luac\.c$') -lm)
  (cd "$lua32_src" && gcc -std=gnu99 -O2 -m32 -msse2 -mfpmath=sse -static -DLUA_32BITS -DLUAI_GCPAUSE=110 -DLUA_USE_POSIX -I. \
    -o lua32-heap "$OLDPWD/tools/lua32/lua32-heap.c" $(ls *.c | grep -v '^luac\.c$' | grep -v '^lua\.c$') -lm)
  for lua32_name in lua32 lua32-heap; do
    cp "$lua32_src/$lua32_name" "$lua32_dir/$lua32_name-i386"
    if [ "$lua32_native" = 1 ]; then
      printf '#!/bin/sh\nexec "$(dirname "$0")/%s-i386" "$@"\n' "$lua32_name" > "$lua32_dir/$lua32_name.tmp"
    else
      printf '#!/bin/sh\n# This kernel cannot execute i386 binaries: qemu-user runs it.\nexec qemu-i386 "$(dirname "$0")/%s-i386" "$@"\n' "$lua32_name" > "$lua32_dir/$lua32_name.tmp"
    fi
    chmod +x "$lua32_dir/$lua32_name.tmp" && mv "$lua32_dir/$lua32_name.tmp" "$lua32_dir/$lua32_name"
  done
  lua32_ok || { echo "setup: $lua32 does not report int32/float32 numbers and 32-bit size_t" >&2; exit 1; }
fi
# --- end lua32 -----------------------------------------------------------------

# npm ci when the lock file changed since the last install (prepare builds build/node).
stamp=node_modules/.fobkit-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "setup: npm ci" >&2
  npm ci --no-fund --no-audit --loglevel=error
  touch "$stamp"
fi
