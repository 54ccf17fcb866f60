/**
 * The `file` module (metadata only on ESP32, docs/modules/file.md) and Lua's
 * `io` library on SPIFFS, which is how dev-esp32 reads and writes contents.
 *
 * Each behaviour from the source (NodeMCU dev-esp32 at 7c5bb151 unless
 * named otherwise):
 * - file.exists: stat() == 0 (components/modules/file.c:79-88); file.remove:
 *   unlink(), its result ignored, nothing returned (file.c:92-98);
 *   file.rename: rename() == 0 as a boolean (file.c:102-113), and SPIFFS
 *   refuses a target that exists (esp_spiffs.c vfs_spiffs_rename ->
 *   SPIFFS_rename, SPIFFS_ERR_CONFLICTING_NAME); file.list: see below.
 * - io.open(name [, mode]): mode is [rwa], an optional "+", then any number
 *   of "b" (liolib.c:40-44 l_checkmode, L_MODEEXT "b"), else "bad argument
 *   #2 (invalid mode)"; a failed fopen gives luaL_fileresult(L, 0, name):
 *   nil, "name: strerror", errno (liolib.c:256-263). Names as in hil/flash.ts.
 * - f:read(...): formats "l", "L", "a", "n" (with an optional "*") or a
 *   count; any other is "bad argument (invalid format)"; read(0) is "" before
 *   the end and nil at it (test_eof); the first failing format ends the read
 *   with nil in its place (liolib.c:474-479, :529-575). "n" is not emulated.
 * - f:write(...): every argument through fwrite (numbers through fprintf),
 *   the status of all of them; a failure is luaL_fileresult(L, 0, NULL): nil,
 *   strerror, errno (liolib.c:620-641). Floats print with fengari's format,
 *   not NodeMCU's "%.7g" (the firmware writes no floats).
 * - errno values and texts are newlib's (sys/errno.h: EIO 5, ENOENT 2,
 *   EBADF 9, ENOSPC 28, ENAMETOOLONG 91).
 *
 * Writes are buffered as newlib's stdio buffers them on the ESP32: a FILE
 * opened for writing gets a BUFSIZ (128-byte) buffer, and bytes reach SPIFFS
 * only when it fills, before a read, or at close. Why 128: newlib's
 * __swhatbuf_r (libc/stdio/makebuf.c) takes the stream's st_blksize when it
 * is > 0, else BUFSIZ; esp_spiffs.c's fstat zeroes the whole struct stat
 * (esp-idf 5.1.3 components/spiffs/esp_spiffs.c:605), so st_blksize is 0;
 * and Espressif's newlib sets __BUFSIZ__ 128 (espressif/newlib-esp32,
 * newlib/libc/include/sys/config.h, "Espressif-specific" block), which
 * stdio.h's BUFSIZ takes. A write of a whole buffer or more with the buffer
 * empty goes out directly in buffer-sized pieces (libc/stdio/fvwrite.c), the
 * same boundaries byte-by-byte buffering gives here. So a full SPIFFS (ENOSPC)
 * or an I/O error first shows where the flush happens: f:write returns
 * (nil, message, errno) only for the flush it triggered, and the record's
 * tail fails at f:close(). After a failed flush the stream is in error
 * (newlib __SERR): later writes fail and close reports failure; what was
 * still buffered never reaches flash. Lua's liolib returns
 * luaL_fileresult(L, 0, NULL) for both: nil, strerror(errno), errno.
 * The "close-error" fault makes every close of a file opened for writing
 * fail with EIO, its buffered bytes lost (SPIFFS_close's own cache flush
 * failing under esp_spiffs.c's close).
 */
import { argError, lauxlib, lua, pushBytes, pushText, raise, toLuaString, bytesText, type LuaState } from "../fengari.js";
import type { Machine } from "../machine.js";

interface OpenFile {
  name: string;
  readable: boolean;
  writable: boolean;
  append: boolean;
  pos: number;
  closed: boolean;
  /** newlib's buffer: bytes written but not yet on flash. */
  buf: number[];
  /** errno of a failed flush (the stream's error flag), 0 if none. */
  errno: number;
}

/** A FILE's buffer on the ESP32: BUFSIZ, __BUFSIZ__ 128 in Espressif's newlib (see the header for the chain). */
export const NEWLIB_BUFSIZ = 128;
const ENOSPC = 28;
const EIO = 5;
const ENAMETOOLONG = 91;
const STRERROR: Record<number, string> = { [ENOSPC]: "No space left on device", [EIO]: "Input/output error", [ENAMETOOLONG]: "File name too long" };

const FILE_CLASS = "FILE*";

export function installFile(m: Machine): void {
  const flash = m.hw.flash;

  const checkName = (L: LuaState, idx: number): string | undefined => flash.normalize(bytesText(lauxlib.luaL_checklstring(L, idx)));

  /** Write newlib's buffer to SPIFFS; on failure the stream keeps the errno and the bytes are gone. */
  const flush = (f: OpenFile): void => {
    if (f.buf.length === 0 || f.errno !== 0) {
      f.buf = [];
      return;
    }
    const bytes = Uint8Array.from(f.buf);
    f.buf = [];
    if (f.append) f.pos = flash.read(f.name)?.length ?? 0;
    const r = flash.write(f.name, f.pos, bytes);
    if (r === "cut") m.halt("power-cut");
    if (r === "full") f.errno = ENOSPC;
    else if (r !== "ok") f.errno = EIO;
    else f.pos += bytes.length;
  };
  /** luaL_fileresult(L, 0, NULL). */
  const failure = (L: LuaState, errno: number): number => {
    lua.lua_pushnil(L);
    pushText(L, STRERROR[errno] ?? `errno ${errno}`);
    lua.lua_pushinteger(L, errno);
    return 3;
  };

  m.defineModule("file", {
    exists: (L) => {
      const name = checkName(L, 1);
      // stat() (file.c:79-88) looks the name up over every block's lookup page, found or not.
      if (name !== undefined) flash.chargeLookup("exists");
      lua.lua_pushboolean(L, name !== undefined && flash.exists(name));
      return 1;
    },
    remove: (L) => {
      const name = checkName(L, 1);
      if (name !== undefined && flash.remove(name) === "cut") m.halt("power-cut");
      return 0;
    },
    rename: (L) => {
      const from = checkName(L, 1);
      const to = checkName(L, 2);
      if (from === undefined || to === undefined) {
        lua.lua_pushboolean(L, false);
        return 1;
      }
      const r = flash.rename(from, to);
      if (r === "cut") m.halt("power-cut");
      lua.lua_pushboolean(L, r === "ok");
      return 1;
    },
    // file_list (file.c:39-75) over opendir("/"): esp_spiffs.c's readdir drops one leading "/" of
    // each name (esp_spiffs.c:734-738), and file_list then stat()s that shortened name: "/x" is
    // listed as "x" with the size of the file "x", or 0 when there is none (the failed stat is
    // only logged, file.c:59-64). Names the table gets twice hold the last one's value; both
    // come from the same stat, so the order does not matter.
    list: (L) => {
      if (!lua.lua_isnoneornil(L, 1)) raise(L, "file.list: only the default SPIFFS root is emulated");
      lua.lua_newtable(L);
      // readdir walks every block's lookup page once (SPIFFS_readdir); then file.c:59 stat()s
      // each entry, one name lookup apiece.
      flash.chargeLookup("list");
      for (const name of flash.list().keys()) {
        flash.chargeLookup("list");
        const shown = name.startsWith("/") ? name.slice(1) : name;
        const statted = flash.normalize(shown);
        lua.lua_pushinteger(L, statted !== undefined && flash.exists(statted) ? flash.size(statted) : 0);
        lua.lua_setfield(L, -2, toLuaString(shown));
      }
      return 1;
    },
  });

  /** file:read's formats (liolib.c g_read) over the file's bytes from f.pos. */
  const readFormats = (L: LuaState, f: OpenFile): number => {
    if (f.closed) raise(L, "attempt to use a closed file");
    if (!f.readable) {
      lua.lua_pushnil(L);
      pushText(L, "Bad file descriptor");
      lua.lua_pushinteger(L, 9);
      return 3;
    }
    flush(f); // newlib's __srefill_r flushes a stream that was writing before it reads (libc/stdio/refill.c)
    const data = flash.read(f.name) ?? new Uint8Array(0);
    const nargs = Math.max(1, lua.lua_gettop(L) - 1);
    let pushed = 0;
    for (let a = 0; a < nargs; a++) {
      const idx = a + 2;
      if (lua.lua_type(L, idx) === lua.LUA_TNUMBER) {
        const n = lua.lua_tointeger(L, idx);
        // read_chars, or test_eof for 0: nil at the end either way.
        if (f.pos >= data.length) {
          lua.lua_pushnil(L);
          return pushed + 1;
        }
        pushBytes(L, data.subarray(f.pos, f.pos + n));
        f.pos = Math.min(data.length, f.pos + n);
      } else {
        const fmt = lua.lua_isnoneornil(L, idx) ? "l" : bytesText(lauxlib.luaL_checklstring(L, idx)).replace(/^\*/, "");
        if (fmt.startsWith("a")) {
          pushBytes(L, data.subarray(f.pos));
          f.pos = data.length;
        } else if (fmt.startsWith("l") || fmt.startsWith("L")) {
          if (f.pos >= data.length) {
            lua.lua_pushnil(L);
            return pushed + 1;
          }
          let end = data.indexOf(10, f.pos);
          const next = end < 0 ? data.length : end + 1;
          if (end < 0) end = data.length;
          pushBytes(L, data.subarray(f.pos, fmt.startsWith("L") ? next : end));
          f.pos = next;
        } else if (fmt.startsWith("n")) raise(L, "file:read: format 'n' is not emulated");
        else argError(L, idx, "invalid format");
      }
      pushed++;
    }
    return pushed;
  };

  const fileMethods: Record<string, (L: LuaState) => number> = {
    read: (L) => {
      const f = m.checkObject<OpenFile>(L, 1, FILE_CLASS);
      const from = f.pos;
      try {
        return readFormats(L, f);
      } finally {
        flash.chargeRead(Math.max(0, f.pos - from));
      }
    },
    write: (L) => {
      const f = m.checkObject<OpenFile>(L, 1, FILE_CLASS);
      if (f.closed) raise(L, "attempt to use a closed file");
      if (!f.writable) {
        lua.lua_pushnil(L);
        pushText(L, "Bad file descriptor");
        lua.lua_pushinteger(L, 9);
        return 3;
      }
      const n = lua.lua_gettop(L);
      for (let i = 2; i <= n; i++) {
        const t = lua.lua_type(L, i);
        if (t !== lua.LUA_TSTRING && t !== lua.LUA_TNUMBER) argError(L, i, "string expected");
      }
      // liolib g_write: status = status && fwrite(...) == l, for every argument.
      for (let i = 2; i <= n; i++) {
        const bytes: Uint8Array = lua.lua_tolstring(L, i);
        for (const b of bytes) {
          if (f.errno !== 0) break;
          f.buf.push(b);
          if (f.buf.length === NEWLIB_BUFSIZ) flush(f);
        }
      }
      if (f.errno !== 0) return failure(L, f.errno);
      lua.lua_settop(L, 1);
      return 1;
    },
    close: (L) => {
      const f = m.checkObject<OpenFile>(L, 1, FILE_CLASS);
      if (f.closed) raise(L, "attempt to use a closed file");
      f.closed = true;
      openFiles--;
      if (f.writable) {
        if (m.hw.faults.has("close-error") && f.errno === 0) {
          f.buf = [];
          f.errno = EIO;
          // The failing flush is SPIFFS's own: its cached run is lost with newlib's buffer.
          flash.abandon(f.name);
        }
        flush(f);
        // SPIFFS_close (esp_spiffs.c vfs_spiffs_close) flushes SPIFFS's own write cache: that append
        // can garbage-collect, or find SPIFFS full (ENOSPC) where every write before it succeeded.
        if (f.errno === 0 && flash.close(f.name) === "full") f.errno = ENOSPC;
        if (f.errno !== 0) return failure(L, f.errno);
      }
      lua.lua_pushboolean(L, true);
      return 1;
    },
  };

  /**
   * Files open now: SPIFFS is mounted with max_files =
   * CONFIG_NODEMCU_MAX_OPEN_FILES (components/base_nodemcu/user_main.c:141;
   * components/platform/Kconfig:29-31, default 4; sdkconfig.fobkit leaves it).
   * One more open finds no SPIFFS descriptor (SPIFFS_ERR_OUT_OF_FILE_DESCS),
   * which esp_spiffs.c's spiffs_res_to_errno does not list: EIO. A file is
   * counted until its close (a leaked handle stays counted: on the board Lua's
   * collector may free it later, never sooner).
   */
  let openFiles = 0;
  const MAX_OPEN_FILES = 4;

  m.defineModule("io", {
    open: (L) => {
      const path = bytesText(lauxlib.luaL_checklstring(L, 1));
      const mode = lua.lua_isnoneornil(L, 2) ? "r" : bytesText(lauxlib.luaL_checklstring(L, 2));
      if (!/^[rwa]\+?b*$/.test(mode)) argError(L, 2, "invalid mode");
      const name = flash.normalize(path);
      const fail = (msg: string, errno: number) => {
        lua.lua_pushnil(L);
        pushText(L, `${path}: ${msg}`);
        lua.lua_pushinteger(L, errno);
        return 3;
      };
      if (name === undefined) return fail(STRERROR[ENAMETOOLONG], ENAMETOOLONG);
      if (openFiles >= MAX_OPEN_FILES) return fail(STRERROR[EIO], EIO);
      const kind = mode[0];
      const plus = mode.includes("+");
      if (kind === "r") flash.chargeLookup();
      if (kind === "r" && !flash.exists(name)) return fail("No such file or directory", 2);
      if (kind !== "r") {
        const r = flash.openWrite(name, kind === "w");
        if (r === "cut") m.halt("power-cut");
        if (r === "full") return fail(STRERROR[ENOSPC], ENOSPC);
        if (r === "fail") return fail(STRERROR[EIO], EIO);
      }
      const f: OpenFile = { name, readable: kind === "r" || plus, writable: kind !== "r" || plus, append: kind === "a", pos: 0, closed: false, buf: [], errno: 0 };
      openFiles++;
      m.pushObject(L, FILE_CLASS, f, fileMethods);
      return 1;
    },
  });
}
