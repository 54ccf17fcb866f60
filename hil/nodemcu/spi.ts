/**
 * `spi` master (spi.c, spi_master.c of dev-esp32): spi.master(host, config,
 * dma) -> bus; bus:device(config) -> device; device:transfer(txdata) -> rx.
 * A transaction asserts CS for its whole length; the device wired to that CS
 * pin sees the bytes. The MAX7219 sits on the display CS pin; its DOUT is not
 * wired back, so reads return zeros. Without DMA a transaction is limited to
 * 32 bytes (spi.md).
 */
import { argError, lauxlib, lua, pushBytes, raise, toLuaString, type LuaState } from "../fengari.js";
import type { Machine } from "../machine.js";

const HSPI = 1;
const VSPI = 2;
const BUS_CLASS = "spi.master";
const DEVICE_CLASS = "spi.device";
const MAX7219_MAX_HZ = 10000000;

interface Bus {
  host: number;
  dma: number;
  devices: number;
}
interface Device {
  bus: Bus;
  cs: number | undefined;
  mode: number;
  freq: number;
}

function intField(L: LuaState, idx: number, key: string): number | undefined {
  lua.lua_getfield(L, idx, toLuaString(key));
  const v = lua.lua_isnil(L, -1) ? undefined : lauxlib.luaL_checkinteger(L, -1);
  lua.lua_pop(L, 1);
  return v;
}

export function installSpi(m: Machine): void {
  const hosts = new Set<number>();

  const deviceMethods = {
    transfer: (L: LuaState) => {
      const d = m.checkObject<Device>(L, 1, DEVICE_CLASS);
      if (lua.lua_type(L, 2) !== lua.LUA_TSTRING) raise(L, "only device:transfer(txdata) with a string is emulated");
      const tx = lauxlib.luaL_checklstring(L, 2) as Uint8Array;
      if (d.bus.dma === 0 && tx.length > 32) raise(L, `${tx.length} bytes in one transaction: without DMA the limit is 32`);
      if (d.cs === m.hw.displayCsPin) {
        if (d.mode !== 0) m.hw.event({ event: "warning", message: `spi: MAX7219 needs SPI mode 0, device uses mode ${d.mode}` });
        if (d.freq > MAX7219_MAX_HZ) m.hw.event({ event: "warning", message: `spi: ${d.freq} Hz exceeds the MAX7219's 10 MHz` });
        m.hw.display.transaction(tx);
      }
      pushBytes(L, new Uint8Array(tx.length));
      return 1;
    },
  };

  const busMethods = {
    device: (L: LuaState) => {
      const bus = m.checkObject<Bus>(L, 1, BUS_CLASS);
      lauxlib.luaL_checktype(L, 2, lua.LUA_TTABLE);
      const mode = intField(L, 2, "mode");
      const freq = intField(L, 2, "freq");
      if (mode === undefined || mode < 0 || mode > 3) raise(L, "device config: mode 0-3 is mandatory");
      if (freq === undefined || freq <= 0) raise(L, "device config: freq is mandatory");
      if (bus.devices >= 3) raise(L, "up to three devices per bus");
      bus.devices++;
      const d: Device = { bus, cs: intField(L, 2, "cs"), mode, freq };
      m.pushObject(L, DEVICE_CLASS, d, deviceMethods);
      return 1;
    },
  };

  m.defineModule("spi", {
    HSPI,
    VSPI,
    master: (L) => {
      const host = lauxlib.luaL_checkinteger(L, 1);
      // spi_master.c:222-226 checks `host == SPI1_HOST || host == SPI2_HOST || host == SPI2_HOST`:
      // a typo that leaves VSPI (SPI3_HOST) "invalid host". SPI1 is the flash's bus
      // (spi_bus_initialize fails on it), so HSPI is the only host that works.
      if (host !== HSPI) argError(L, 1, host === VSPI ? "invalid host (spi_master.c:224 accepts SPI1_HOST and SPI2_HOST only, so not VSPI)" : "invalid host");
      if (hosts.has(host)) raise(L, `host ${host} is already initialised`);
      if (lua.lua_type(L, 2) !== lua.LUA_TTABLE) raise(L, "spi.master without a config table (sdmmc sharing) is not emulated");
      const dma = lua.lua_isnoneornil(L, 3) ? 1 : lauxlib.luaL_checkinteger(L, 3);
      if (dma < 0 || dma > 2) argError(L, 3, "dma channel must be 0, 1 or 2");
      hosts.add(host);
      m.pushObject(L, BUS_CLASS, { host, dma, devices: 0 } satisfies Bus, busMethods);
      return 1;
    },
  });
}
