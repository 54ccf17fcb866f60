/**
 * The image's heap on lua32 (Debian's lua5.3 with -DLUA_32BITS -m32: int32,
 * float32, 32-bit pointers, NodeMCU's number model), with the Lua-side
 * NodeMCU stand-ins of test/support/nodemcu-stand-ins.lua. Writes
 * bench/results/memory.json:
 *   {"vm", "imageBytes", "peakKB", "residentAfterBootKB", "perPressKB", ...}
 *
 *   node build/node/tools/bench-memory.js   (after make firmware)
 *
 * Method. A board directory gets the image as it is installed
 * (fobkit.lua and init.lua), is provisioned and locked over the stand-in
 * UART in one power-on, then a second power-on is measured:
 * - baseline: after the stand-ins are loaded (they stand for C modules, whose
 *   memory is not the image's) and a full collect;
 * - peakKB: the highest heap above the baseline while init.lua loads and
 *   starts the image (build/lua32/lua32-heap's allocator sees inside the
 *   parser and the bytecode loader, which collectgarbage("count") cannot);
 * - residentAfterBootKB: collectgarbage("count") above the baseline after
 *   boot and two full collects: the keyfob locked and idle;
 * - perPressKB: after 10 warm-up presses (as many as are measured: Lua's
 *   string table grows once, by a power of two, while a window's strings
 *   wait for the collector; 3 were too few once the image got smaller), the growth of collectgarbage("count")
 *   (full collect before and after) over 10 presses, each in a new 60 s step,
 *   divided by 10.
 * Goals (issue 10): peak <= 80, resident <= 48, per press 0 once warm.
 */
import { benchProvisioningFrames } from "./bench-provisioning.js";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { IMAGE_FILES } from "../host/flash/image-files.js";
import { initSource } from "../host/flash/init-lua.js";

const HERE = dirname(fileURLToPath(import.meta.url));
/** This file runs from <build>/node/tools/. */
const BUILD = process.env.FOBKIT_BUILD ? resolve(process.env.FOBKIT_BUILD) : resolve(HERE, "..", "..");
const ROOT = resolve(HERE, "..", "..", "..");
const IMAGE = resolve(BUILD, "firmware", "fobkit.lua");
const LUA32_DIR = resolve(ROOT, "build", "lua32");
const STAND_INS = resolve(ROOT, "test", "support", "nodemcu-stand-ins.lua");

export const GOALS = { peakKB: 80, residentAfterBootKB: 48, perPressKB: 0 };

export interface MemoryBench {
  vm: string;
  imageBytes: number;
  peakKB: number;
  residentAfterBootKB: number;
  perPressKB: number;
  /** With bytecode install: the highest peak of node.compile over the image's files, and the .lc files' sizes. */
  compilePeakKB?: number;
  bytecodeBytes?: number;
  /** Every file of the image (source bytes), as installed. */
  files?: Record<string, number>;
  /** The same locked boot from source (init.lua running fobkit.lua), for comparison. */
  fromSource?: { peakKB: number; residentAfterBootKB: number };
  goals: typeof GOALS;
  details: {
    image: string;
    installed: string[];
    /** Smallest heap above the baseline in which the locked keyfob loads and boots (emergency GC allowed). */
    bootsInKB: number;
    blankBoot: { peakKB: number; residentAfterBootKB: number };
    provisioningPeakKB: number;
    lockedBootBlocks: number;
    perPressBytes: number;
    method: string;
  };
}

const kb = (bytes: number) => Math.round((bytes / 1024) * 10) / 10;

function luaBytes(bytes: ArrayLike<number>): string {
  return '"' + Array.from(bytes, (b) => "\\" + String(b).padStart(3, "0")).join("") + '"';
}

function runHeap(dir: string, body: string, limit?: number): Record<string, number> {
  const script = `BOARD = dofile(${JSON.stringify(STAND_INS)})\nlocal R = {}\n${body}\nlocal o = {} for k, v in pairs(R) do o[#o + 1] = string.format("%q:%d", k, v) end io.write("{" .. table.concat(o, ",") .. "}")\n`;
  const exe = join(LUA32_DIR, "lua32-heap");
  if (!existsSync(exe)) throw new Error(`${exe} missing (scripts/setup.sh builds it; run make setup)`);
  const r = spawnSync(exe, limit === undefined ? ["-"] : ["--limit", String(limit), "-"], { cwd: dir, input: script, maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`lua32-heap: ${r.stderr.toString()}${r.error ? r.error.message : ""}`);
  // init.lua prints on a failed boot (the bisection's too-small heaps): the results are the last line.
  const text = r.stdout.toString();
  return JSON.parse(text.slice(text.lastIndexOf("\n") + 1)) as Record<string, number>;
}

const MEASURE_BOOT = String.raw`
FAIL_ON_ERROR = not LIMITED
BOARD.log_spi = false
BOARD.log_opens = false
collectgarbage("collect") collectgarbage("collect")
local base = heap.now()
heap.reset()
local ok = BOARD.boot()
-- init.lua (host/flash/init-lua.ts) catches a failed load or start (out of
-- memory included) and prints it: the keyfob is up only if the image got as
-- far as starting the console UART, its last boot step (firmware/app/main.ts).
local up = BOARD.console.started
R.peak = heap.peak() - base
R.base = base
R.ok = (ok and up and not BOARD.init_error) and 1 or 0
if FAIL_ON_ERROR and R.ok == 0 then error("boot failed: " .. tostring(BOARD.init_error)) end
collectgarbage("collect") collectgarbage("collect")
R.resident = math.floor(collectgarbage("count") * 1024) - base
R.blocks = heap.blocks()
`;

function press(n: number): string {
  return `for k = 1, ${n} do BOARD.advance(60000) BOARD.press() BOARD.advance(50) BOARD.release() end`;
}

/** Measure the image at imagePath (also used for prototypes: any image file). */
export interface MeasureOptions {
  /**
   * Install as bytecode, as every board is: node.compile of each file of the
   * image (the stand-in dumps stripped bytecode, as node.c:718-779 does),
   * the source removed, init.lua runs fobkit.lc.
   */
  bytecode?: boolean;
}

export async function measureImage(imagePath: string, opts: MeasureOptions = {}): Promise<MemoryBench> {
  const installed = [...IMAGE_FILES.map((f) => (opts.bytecode ? f.replace(/\.lua$/, ".lc") : f)), "init.lua"];
  const frames = benchProvisioningFrames();
  const dir = mkdtempSync(join(tmpdir(), "fobkit-mem-"));
  try {
    // Every file of the image (core first), from the image's directory.
    const files = IMAGE_FILES.map((f) => (f === "fobkit.lua" ? imagePath : resolve(dirname(imagePath), f)));
    for (let k = 0; k < files.length; k++) copyFileSync(files[k], join(dir, IMAGE_FILES[k]));
    let compilePeak: number | undefined;
    if (opts.bytecode) {
      // node.compile each file in a power-on of its own (as the flasher does: a REPL line each), then remove the source.
      compilePeak = 0;
      for (const f of IMAGE_FILES) {
        const c = runHeap(dir, `collectgarbage("collect") local base = heap.now() heap.reset() node.compile(${JSON.stringify(f)}) R.peak = heap.peak() - base os.remove(${JSON.stringify(f)})`);
        compilePeak = Math.max(compilePeak, c.peak);
      }
      writeFileSync(join(dir, "init.lua"), initSource("fobkit.lc"));
    } else {
      writeFileSync(join(dir, "init.lua"), initSource("fobkit.lua"));
    }
    const bytecodeBytes = opts.bytecode ? IMAGE_FILES.reduce((n, f) => n + statSync(join(dir, f.replace(/\.lua$/, ".lc"))).size, 0) : undefined;
    // Power-on 1: blank boot, then one provisioning (its peak too).
    const blank = runHeap(dir, `${MEASURE_BOOT}
      heap.reset()
      BOARD.rx(${luaBytes(frames)})
      R.provisioning_peak = heap.peak() - base
      local tx = BOARD.take_tx()
      R.replies = #tx
      R.rtc_base = BOARD.ds3231.base
      R.errors = #BOARD.errors`);
    if (blank.errors !== 0) throw new Error("provisioning raised in a callback");
    // Power-on 2: locked, idle; then presses.
    const locked = runHeap(dir, `BOARD.ds3231.base = ${blank.rtc_base} BOARD.ds3231.reg[0x0f] = 0
      ${MEASURE_BOOT}
      ${press(10)}
      collectgarbage("collect") collectgarbage("collect")
      local before = collectgarbage("count")
      ${press(10)}
      collectgarbage("collect") collectgarbage("collect")
      R.per_press_bytes = math.floor((collectgarbage("count") - before) * 1024 / 10 + 0.5)
      R.state_locked = BOARD.errors and #BOARD.errors or 0`);
    if (locked.state_locked !== 0) throw new Error("a press raised in a callback");
    // The smallest heap (above the baseline) in which the locked keyfob still
    // loads and boots, the collector's emergency collections included: what
    // a board must have free. Bisection to 1 KB.
    const bootsWithin = (extra: number) =>
      runHeap(dir, `LIMITED = true BOARD.ds3231.base = ${blank.rtc_base} BOARD.ds3231.reg[0x0f] = 0\n${MEASURE_BOOT}`, locked.base + extra).ok === 1;
    let lo = 0;
    let hi = Math.max(4096, Math.ceil(locked.peak / 1024) * 1024);
    if (!bootsWithin(hi)) throw new Error(`the image does not boot within its own peak (${hi} bytes)`);
    while (hi - lo > 1024) {
      const mid = Math.floor((lo + hi) / 2 / 1024) * 1024 || 1024;
      if (mid === hi || mid === lo) break;
      if (bootsWithin(mid)) hi = mid;
      else lo = mid;
    }
    const bench: MemoryBench = {
      vm: "lua32: Debian lua5.3 5.3.6 source, -DLUA_32BITS -m32 (int32, float32, 4-byte pointers), heap-tracking allocator",
      imageBytes: files.reduce((n, f) => n + statSync(f).size, 0),
      files: Object.fromEntries(IMAGE_FILES.map((f, k) => [f, statSync(files[k]).size])),
      ...(compilePeak === undefined ? {} : { compilePeakKB: kb(compilePeak), bytecodeBytes: bytecodeBytes }),
      peakKB: kb(locked.peak),
      residentAfterBootKB: kb(locked.resident),
      perPressKB: kb(locked.per_press_bytes),
      goals: GOALS,
      details: {
        image: relative(ROOT, imagePath),
        installed,
        bootsInKB: kb(hi),
        blankBoot: { peakKB: kb(blank.peak), residentAfterBootKB: kb(blank.resident) },
        provisioningPeakKB: kb(blank.provisioning_peak),
        lockedBootBlocks: locked.blocks,
        perPressBytes: locked.per_press_bytes,
        method:
          "locked keyfob's second power-on: peak = allocator high-water mark above the post-stand-ins baseline while init.lua loads and starts the image; resident = collectgarbage('count') above baseline after boot + 2 full collects; perPress = growth over 10 presses (each a new 60 s step) after 10 warm-up presses, full collects around, / 10",
      },
    };
    return bench;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The image as installed (bytecode, node.compile on the board), with the source boot's figures beside it. */
export async function runMemoryBench(): Promise<MemoryBench> {
  const installed = await measureImage(IMAGE, { bytecode: true });
  const source = await measureImage(IMAGE);
  return { ...installed, fromSource: { peakKB: source.peakKB, residentAfterBootKB: source.residentAfterBootKB } };
}

export function formatMemoryBench(b: MemoryBench): string {
  const mark = (v: number, goal: number) => (v <= goal ? "ok" : `over the ${goal} KB goal`);
  return [
    `image ${b.details.image}: ${b.imageBytes} bytes` + (b.files ? ` in ${Object.entries(b.files).map(([n, v]) => `${n} ${v}`).join(", ")}` : "") + (b.bytecodeBytes === undefined ? "" : `; installed as ${b.bytecodeBytes} bytes of bytecode, node.compile peaks ${b.compilePeakKB} KB (largest file)`),
    `peak while loading and booting (locked): ${b.peakKB} KB (${mark(b.peakKB, GOALS.peakKB)})`,
    `resident after boot (locked, idle):      ${b.residentAfterBootKB} KB (${mark(b.residentAfterBootKB, GOALS.residentAfterBootKB)})`,
    `per press once warm:                     ${b.perPressKB} KB (${mark(b.perPressKB, GOALS.perPressKB)})`,
    `smallest heap the locked keyfob boots in:  ${b.details.bootsInKB} KB (emergency collections allowed)`,
    `blank boot: peak ${b.details.blankBoot.peakKB} KB, resident ${b.details.blankBoot.residentAfterBootKB} KB; one provisioning peaks ${b.details.provisioningPeakKB} KB above the baseline`,
    ...(b.fromSource ? [`from source instead (init.lua running fobkit.lua): peak ${b.fromSource.peakKB} KB, resident ${b.fromSource.residentAfterBootKB} KB`] : []),
    `vm: ${b.vm}`,
  ].join("\n");
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes("--help")) {
    process.stdout.write("usage: bench-memory [IMAGE.lua] [--source] [--json]\n  installed as on a board: node.compile of each file, init.lua boots fobkit.lc\n  --source: boot the source instead (init.lua runs fobkit.lua)\n  no IMAGE: measure build/firmware/fobkit.lua and write bench/results/memory.json\n");
    return;
  }
  const files = args.filter((a) => !a.startsWith("--"));
  const image = files[0] ? resolve(files[0]) : IMAGE;
  const bench = files[0] ? await measureImage(image, { bytecode: !args.includes("--source") }) : await runMemoryBench();
  if (args.includes("--json")) {
    process.stdout.write(JSON.stringify(bench, null, 2) + "\n");
    return;
  }
  if (!files[0]) {
    const outDir = resolve(ROOT, "bench", "results");
    mkdirSync(outDir, { recursive: true });
    writeFileSync(resolve(outDir, "memory.json"), JSON.stringify(bench, null, 2) + "\n");
  }
  process.stdout.write(formatMemoryBench(bench) + "\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e) => {
    process.stderr.write(`bench-memory: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
