// Small, valid image files built in memory, plus broken ones, for icon tests.

import { randomBytes } from "node:crypto";
import { deflateSync } from "node:zlib";

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A complete, decodable 1x1 RGBA PNG; `seed` varies the pixel so bytes differ. */
export function png(seed = 0) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(1, 0); // width
  ihdr.writeUInt32BE(1, 4); // height
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // colour type RGBA
  // compression, filter, interlace = 0
  const pixel = Buffer.from([0, seed & 0xff, (seed >> 8) & 0xff, 0x80, 0xff]); // filter byte + RGBA
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", deflateSync(pixel)),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

/** A PNG of exactly `size` bytes: a valid PNG followed by an ancillary padding chunk. */
export function pngOfSize(size) {
  const head = png(7);
  const iend = head.subarray(head.length - 12);
  const body = head.subarray(0, head.length - 12);
  const padding = size - body.length - iend.length - 12; // 12 = chunk length + type + crc
  if (padding < 0) throw new Error(`pngOfSize: ${size} is too small`);
  return Buffer.concat([body, pngChunk("zPAD", Buffer.alloc(padding)), iend]);
}

/**
 * A complete, decodable 1x1 greyscale baseline JPEG: SOI, JFIF APP0, a quantisation table,
 * the frame header (SOF0), one-code DC and AC Huffman tables, the scan (SOS) with its one
 * block (DC difference 0, end of block), EOI.
 */
export function jpeg() {
  return Buffer.from([
    0xff, 0xd8, // SOI
    0xff, 0xe0, 0x00, 0x10, // APP0, length 16
    0x4a, 0x46, 0x49, 0x46, 0x00, // "JFIF\0"
    0x01, 0x01, // version 1.1
    0x00, // density units
    0x00, 0x01, 0x00, 0x01, // density 1x1
    0x00, 0x00, // no thumbnail
    0xff, 0xdb, 0x00, 0x43, 0x00, ...Array(64).fill(1), // DQT: table 0, all ones
    0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00, // SOF0 1x1, 1 component
    0xff, 0xc4, 0x00, 0x14, 0x00, 0x01, ...Array(15).fill(0), 0x00, // DHT DC 0: one 1-bit code, category 0
    0xff, 0xc4, 0x00, 0x14, 0x10, 0x01, ...Array(15).fill(0), 0x00, // DHT AC 0: one 1-bit code, EOB
    0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, // SOS
    0x3f, // DC code 0, EOB code 0, padded with ones
    0xff, 0xd9, // EOI
  ]);
}

/** The classic 1x1 transparent GIF89a. */
export function gif() {
  return Buffer.from(
    "47494638396101000100800000ffffff00000021f90401000000002c00000000010001000002024401003b",
    "hex",
  );
}

/** An ISO-BMFF `ftyp` box with the given brands. */
export function isoBmff(majorBrand, compatibleBrands) {
  const brands = [majorBrand, ...compatibleBrands];
  const size = 16 + 4 * compatibleBrands.length;
  const box = Buffer.alloc(size);
  box.writeUInt32BE(size, 0);
  box.write("ftyp", 4, "ascii");
  box.write(majorBrand, 8, "ascii");
  box.writeUInt32BE(0, 12); // minor version
  compatibleBrands.forEach((b, i) => box.write(b, 16 + 4 * i, "ascii"));
  if (brands.some((b) => b.length !== 4)) throw new Error("brands are 4 characters");
  return box;
}

const u8 = (n) => Buffer.from([n]);
const u16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };

function box(type, ...parts) {
  const body = Buffer.concat(parts);
  return Buffer.concat([u32(8 + body.length), Buffer.from(type, "ascii"), body]);
}

const fullBox = (type, version, ...parts) => box(type, u8(version), Buffer.alloc(3), ...parts);

/**
 * A HEIF still image with one item: `ftyp` with the given brands, then `meta` (handler
 * `pict`, primary item, item info, item location pointing into `mdat`, properties with the
 * item's `ispe` and their association), then `mdat`. The item's bytes are no real HEVC
 * bitstream: the server checks the box structure, never pixels.
 */
export function heifFile(majorBrand, compatibleBrands, width = 1, height = 1) {
  const ftyp = isoBmff(majorBrand, compatibleBrands);
  const item = Buffer.from([0, 0, 0, 1, 0x26, 0x01]);
  const meta = (offset) =>
    fullBox(
      "meta", 0,
      fullBox("hdlr", 0, u32(0), Buffer.from("pict"), Buffer.alloc(12), u8(0)),
      fullBox("pitm", 0, u16(1)),
      fullBox("iinf", 0, u16(1), fullBox("infe", 2, u16(1), u16(0), Buffer.from("hvc1"), u8(0))),
      // 4-byte offsets and lengths, no base offset; item 1, one extent.
      fullBox("iloc", 0, u8(0x44), u8(0x00), u16(1), u16(1), u16(0), u16(1), u32(offset), u32(item.length)),
      box(
        "iprp",
        box("ipco", fullBox("ispe", 0, u32(width), u32(height))),
        fullBox("ipma", 0, u32(1), u16(1), u8(1), u8(0x81)),
      ),
    );
  const offset = ftyp.length + meta(0).length + 8;
  return Buffer.concat([ftyp, meta(offset), box("mdat", item)]);
}

export const heic = () => heifFile("heic", ["mif1", "heic"]);
export const heif = () => heifFile("mif1", ["mif1"]);

/** Every accepted format with the MIME type the server must detect. */
export const VALID_IMAGES = [
  { name: "PNG", bytes: png(1), mimeType: "image/png" },
  { name: "JPEG", bytes: jpeg(), mimeType: "image/jpeg" },
  { name: "GIF", bytes: gif(), mimeType: "image/gif" },
  { name: "HEIC", bytes: heic(), mimeType: "image/heic" },
  { name: "HEIF", bytes: heif(), mimeType: "image/heif" },
];

/** Byte strings that are not a supported image (or whose header is cut short). */
export const INVALID_IMAGES = [
  // 0x00 0x01 prefix keeps random bytes from accidentally matching a signature.
  { name: "random bytes", bytes: Buffer.concat([Buffer.from([0x00, 0x01]), randomBytes(256)]) },
  { name: "plain text", bytes: Buffer.from("this is not an image, just some text\n") },
  { name: "PNG signature only", bytes: PNG_SIGNATURE },
  { name: "PNG cut inside IHDR", bytes: png(2).subarray(0, 20) },
  { name: "GIF magic only", bytes: Buffer.from("GIF89a") },
  { name: "JPEG SOI only", bytes: Buffer.from([0xff, 0xd8]) },
  { name: "ftyp box larger than the data", bytes: heic().subarray(0, 14) },
  { name: "ftyp with an unknown brand", bytes: isoBmff("qt  ", ["qt  "]) },
];

/**
 * A decodable RGB PNG of `width` x `height` whose pixel (x, y) is `colour(x, y)` = [r, g, b]:
 * for icons a person (or a screenshot) should recognise.
 */
export function pngPicture(width, height, colour) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3); // filter byte 0, then RGB
    for (let x = 0; x < width; x++) row.set(colour(x, y), 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", deflateSync(Buffer.concat(rows))),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}
