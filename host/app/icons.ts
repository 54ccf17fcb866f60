/**
 * The web app's icons, drawn in code: a keyfob's display with eight digits
 * on the bank's blue. The PNGs an installable web app needs (a 192 and a
 * 512 px icon; Chromium's install criteria, web.dev "What does it take to be
 * installable?") are encoded here with node:zlib, so the build needs no
 * image tool and the repository no binary files. The SVG is the same
 * drawing for browsers that take vector icons.
 *
 * PNG (RFC 2083 / W3C PNG 3rd ed.): signature, IHDR (8-bit RGBA, colour
 * type 6), one IDAT of zlib-deflated scanlines each led by filter type 0,
 * IEND; every chunk's CRC-32 over its type and data (§5.3).
 */
import { crc32, deflateSync } from "node:zlib";

const BLUE = [0x0b, 0x5c, 0xad, 0xff];
const WHITE = [0xff, 0xff, 0xff, 0xff];
const INK = [0x1b, 0x1f, 0x24, 0xff];
const CLEAR = [0, 0, 0, 0];

/** The drawing on a 0..1 square, as the colour at (x, y). `maskable`: full-bleed background (the safe zone is the middle 80%). */
function colourAt(x: number, y: number, maskable: boolean): number[] {
  if (!maskable) {
    // Rounded square background, corner radius 0.18.
    const r = 0.18;
    const cx = Math.min(Math.max(x, r), 1 - r);
    const cy = Math.min(Math.max(y, r), 1 - r);
    if ((x - cx) ** 2 + (y - cy) ** 2 > r * r) return CLEAR;
  }
  // The display: a white band across the middle.
  const dx0 = 0.2, dx1 = 0.8, dy0 = 0.36, dy1 = 0.56;
  if (x >= dx0 && x < dx1 && y >= dy0 && y < dy1) {
    // Eight digits as bars, with gaps, inside the display.
    const inner = (x - dx0 - 0.03) / (dx1 - dx0 - 0.06);
    const cell = inner * 8;
    const inCell = cell - Math.floor(cell);
    if (inner >= 0 && inner < 1 && inCell > 0.18 && inCell < 0.82 && y > dy0 + 0.045 && y < dy1 - 0.045) return INK;
    return WHITE;
  }
  // The button: a white dot below the display.
  if ((x - 0.5) ** 2 + (y - 0.7) ** 2 < 0.055 ** 2) return WHITE;
  return BLUE;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

/** A size x size RGBA PNG of the icon. */
export function iconPng(size: number, maskable = false): Buffer {
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) {
    const row = y * (size * 4 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const c = colourAt((x + 0.5) / size, (y + 0.5) / size, maskable);
      raw.set(c, row + 1 + x * 4);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering
  ihdr[12] = 0; // no interlace
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw, { level: 9 })), chunk("IEND", Buffer.alloc(0))]);
}

/** The same drawing as SVG (100 x 100 units). */
export function iconSvg(): string {
  const bars = Array.from({ length: 8 }, (_, i) => {
    const cell = (60 - 6) / 8;
    const x = 20 + 3 + i * cell + cell * 0.18;
    return `<rect x="${x.toFixed(2)}" y="40.5" width="${(cell * 0.64).toFixed(2)}" height="11" fill="#1b1f24"/>`;
  }).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100" role="img" aria-label="fobkit"><rect width="100" height="100" rx="18" fill="#0b5cad"/><rect x="20" y="36" width="60" height="20" fill="#fff"/>${bars}<circle cx="50" cy="70" r="5.5" fill="#fff"/></svg>\n`;
}
