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

/** JPEG: SOI, a JFIF APP0 segment, EOI. */
export function jpeg() {
  return Buffer.from([
    0xff, 0xd8, // SOI
    0xff, 0xe0, 0x00, 0x10, // APP0, length 16
    0x4a, 0x46, 0x49, 0x46, 0x00, // "JFIF\0"
    0x01, 0x01, // version 1.1
    0x00, // density units
    0x00, 0x01, 0x00, 0x01, // density 1x1
    0x00, 0x00, // no thumbnail
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

/** An ISO-BMFF file consisting of an `ftyp` box with the given brands. */
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

export const heic = () => isoBmff("heic", ["mif1", "heic"]);
export const heif = () => isoBmff("mif1", ["mif1"]);

/** Every accepted format with the MIME type the server must detect. */
export const VALID_IMAGES = [
  { name: "PNG", bytes: png(1), mimeType: "image/png" },
  { name: "JPEG", bytes: jpeg(), mimeType: "image/jpeg" },
  { name: "GIF", bytes: gif(), mimeType: "image/gif" },
  { name: "HEIC", bytes: heic(), mimeType: "image/heic" },
  { name: "HEIF", bytes: heif(), mimeType: "image/heif" },
];

/** Byte strings that are not a supported image (or are a truncated one). */
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
