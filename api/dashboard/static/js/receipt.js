// Verifying a carbon receipt in the browser with nothing but the platform's public key: the same checks, in the
// same order, as toogreen.signing.verify_receipt, over the same canonical encoding as
// toogreen.domain.receipts.canonical_bytes (JSON, sorted keys, no whitespace, UTF-8, numbers as Python writes
// them), with the Ed25519 signature checked by WebCrypto.
//
// The receipt is parsed from the response text with lossless-json, so each number keeps what it was: Python
// writes the float 3.0 as "3.0" and the int 3 as "3", which a plain JSON.parse could not tell apart.

import { isLosslessNumber, parse } from "lossless-json";

export const REQUIRED = ["receipt_id", "workload_id", "issued_ms", "intervals", "kwh", "gco2_actual", "gco2_baseline",
  "gco2_saved", "method", "data_sources", "signature", "public_key"];

/** The shortest decimal digits that round-trip to x (> 0), and the decimal exponent of the first: read from
 * String(x), whose digits the ECMAScript spec fixes as the shortest, and the closest to x where several are. */
function shortestDigits(x) {
  const [mantissa, exponent = "0"] = String(x).split("e");
  const [whole, fraction = ""] = mantissa.split(".");
  let digits = whole + fraction;
  let point = whole.length + Number(exponent); // the decimal point comes after this many digits
  const zeros = digits.match(/^0*/)[0].length;
  digits = digits.slice(zeros).replace(/0+$/, "");
  point -= zeros;
  return { digits, e: point - 1 };
}

/** Python's repr() of a float (float_repr_style 'short'): the shortest digits that round-trip, in fixed
 * notation when the decimal exponent is in [-4, 16), else as d.ddde±XX; a whole number keeps its ".0". */
export function pythonFloatRepr(x) {
  if (!Number.isFinite(x)) throw new Error(`${x} has no JSON form`);
  const sign = x < 0 || Object.is(x, -0) ? "-" : "";
  if (x === 0) return `${sign}0.0`;
  const { digits, e } = shortestDigits(Math.abs(x));
  if (e < -4 || e >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  }
  if (e < 0) return `${sign}0.${"0".repeat(-e - 1)}${digits}`;
  const whole = digits.slice(0, e + 1).padEnd(e + 1, "0");
  const fraction = digits.slice(e + 1);
  return `${sign}${whole}.${fraction || "0"}`;
}

/** A number as Python's json.dumps writes it: an integer as its digits, a float (a literal with a point or an
 * exponent) as repr() writes it. */
export function pythonNumber(literal) {
  return /[.eE]/.test(literal) ? pythonFloatRepr(Number(literal)) : literal;
}

/** Python's sort_keys order: by code point (JavaScript's default sort compares UTF-16 code units, which differs
 * beyond the Basic Multilingual Plane). */
function byCodePoint(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) of a lossless-parsed value.
 * Written out here rather than through an object: JavaScript orders integer-like keys ("9", "10") first. */
function canonicalJson(value) {
  if (isLosslessNumber(value)) return pythonNumber(value.toString());
  if (value === null || typeof value === "boolean") return String(value);
  if (typeof value === "string") return JSON.stringify(value); // the same escapes as Python's ensure_ascii=False
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value).sort(byCodePoint);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  throw new Error(`a receipt holds no ${typeof value}`);
}

/** The canonical encoding of a receipt (every field but the signature), as bytes: what the signature covers. */
export function canonicalBytes(receipt) {
  const { signature: _ignored, ...body } = receipt;
  return new TextEncoder().encode(canonicalJson(body));
}

/** Parse a receipt from the API's response text, keeping every number's literal. */
export function parseReceipt(text) {
  return parse(text);
}

function bytesFromHex(hex) {
  if (typeof hex !== "string" || !/^([0-9a-f]{2})*$/i.test(hex)) throw new Error("not hex");
  return new Uint8Array(hex.match(/../g)?.map((b) => parseInt(b, 16)) ?? []);
}

const n = (v) => (isLosslessNumber(v) ? Number(v.toString()) : Number(v));

/** {valid, failed_check, checks}: the checks of verify_receipt, run here. `trustedKeyHex` is the platform's
 * Ed25519 public key (from /api/v1/public-key, or pinned by the reader). */
export async function verifyReceipt(receipt, trustedKeyHex) {
  const checks = [];
  const fail = (failed_check) => ({ valid: false, failed_check, checks });
  const missing = REQUIRED.filter((f) => !(f in receipt));
  if (missing.length) return fail(`missing fields: ${missing.join(", ")}`);
  checks.push("every required field is present");
  if (receipt.public_key !== trustedKeyHex) return fail("public key in the receipt is not the platform's");
  checks.push("it names the platform's public key");
  if (!globalThis.crypto?.subtle) {
    return fail("this page is not a secure context (https or localhost), so the browser offers no WebCrypto");
  }
  let key;
  try {
    key = await crypto.subtle.importKey("raw", bytesFromHex(trustedKeyHex), { name: "Ed25519" }, false, ["verify"]);
  } catch (error) {
    return fail(`this browser cannot verify Ed25519 (${error.message})`);
  }
  let ok = false;
  try {
    ok = await crypto.subtle.verify({ name: "Ed25519" }, key, bytesFromHex(receipt.signature), canonicalBytes(receipt));
  } catch {
    ok = false;
  }
  if (!ok) return fail("signature does not match the receipt's contents");
  checks.push("the Ed25519 signature matches its canonical encoding (WebCrypto)");
  const kwh = receipt.intervals.reduce((s, i) => s + n(i.kwh), 0);
  const gco2 = receipt.intervals.reduce((s, i) => s + n(i.gco2), 0);
  if (Math.abs(kwh - n(receipt.kwh)) > 1e-5 * Math.max(1, kwh) || Math.abs(gco2 - n(receipt.gco2_actual)) > 1e-5 * Math.max(1, gco2)) {
    return fail("totals do not add up from the intervals");
  }
  checks.push("kWh and gCO2 add up from its intervals");
  return { valid: true, failed_check: null, checks };
}
