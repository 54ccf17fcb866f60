/*
 * lua32-heap: Debian's Lua 5.3 core (built by scripts/setup.sh with
 * -DLUA_32BITS -m32) behind an allocator that tracks the heap, for
 * `make bench`'s memory figures (tools/bench-memory.ts).
 *
 *   lua32-heap [--limit BYTES] [script.lua | -]
 *
 * Lua's own count (collectgarbage("count")) is the sum of what this
 * allocator holds, but Lua cannot see its own peak: the parser and the
 * bytecode loader allocate inside one C call. This allocator records it.
 * The global `heap` has:
 *   heap.now()    bytes held now
 *   heap.peak()   highest bytes held since the last heap.reset()
 *   heap.reset()  start a new peak from now
 *   heap.blocks() allocations held now (ESP-IDF adds about 8 bytes to each)
 * --limit makes allocations beyond BYTES fail, as a board's heap would:
 * Lua then runs an emergency full collection and retries before it raises
 * "not enough memory" (lmem.c luaM_realloc_).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

static size_t now_bytes, peak_bytes, limit_bytes, blocks;

static void *heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (ptr == NULL) osize = 0;
  if (nsize == 0) {
    if (ptr != NULL) blocks--;
    free(ptr);
    now_bytes -= osize;
    return NULL;
  }
  if (limit_bytes && nsize > osize && now_bytes - osize + nsize > limit_bytes) return NULL;
  void *p = realloc(ptr, nsize);
  if (p == NULL) return NULL;
  if (ptr == NULL) blocks++;
  now_bytes = now_bytes - osize + nsize;
  if (now_bytes > peak_bytes) peak_bytes = now_bytes;
  return p;
}

static int l_now(lua_State *L) { lua_pushinteger(L, (lua_Integer)now_bytes); return 1; }
static int l_peak(lua_State *L) { lua_pushinteger(L, (lua_Integer)peak_bytes); return 1; }
static int l_reset(lua_State *L) { (void)L; peak_bytes = now_bytes; return 0; }
static int l_blocks(lua_State *L) { lua_pushinteger(L, (lua_Integer)blocks); return 1; }

static int panic(lua_State *L) {
  fprintf(stderr, "lua32-heap: PANIC: %s\n", lua_tostring(L, -1));
  return 0;
}

static int traceback(lua_State *L) {
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

int main(int argc, char **argv) {
  const char *script = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) limit_bytes = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "-") == 0) script = NULL;
    else if (argv[i][0] == '-') {
      fprintf(stderr, "usage: lua32-heap [--limit BYTES] [script.lua | -]\n");
      return 2;
    } else script = argv[i];
  }
  lua_State *L = lua_newstate(heap_alloc, NULL);
  if (L == NULL) return 1;
  lua_atpanic(L, panic);
  luaL_openlibs(L);
  static const luaL_Reg fns[] = {{"now", l_now}, {"peak", l_peak}, {"reset", l_reset}, {"blocks", l_blocks}, {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_setglobal(L, "heap");
  lua_pushcfunction(L, traceback);
  if (luaL_loadfile(L, script) != LUA_OK || lua_pcall(L, 0, 0, -2) != LUA_OK) {
    fprintf(stderr, "lua32-heap: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_close(L);
  return 0;
}
