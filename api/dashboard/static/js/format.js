// Small helpers to show values: HTML escaping, numbers with their units, times.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escape text for HTML (every value from the API goes through it). */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** A template tag that escapes every interpolated value, except those already wrapped by `raw`. */
export function html(strings, ...values) {
  return strings.reduce((out, s, i) => {
    if (i === 0) return s;
    const v = values[i - 1];
    const text = v instanceof Raw ? v.text : Array.isArray(v) ? v.map((x) => (x instanceof Raw ? x.text : esc(x))).join("") : esc(v);
    return out + text + s;
  }, "");
}

class Raw {
  constructor(text) {
    this.text = text;
  }
}

/** Mark already-built HTML so that `html` does not escape it again. */
export function raw(text) {
  return new Raw(text);
}

export function num(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return Number(value).toLocaleString("en-GB", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A small quantity shown with enough significant digits (grams of a short job, cents). */
export function sig(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (value === 0) return "0";
  return Number(value).toLocaleString("en-GB", { maximumSignificantDigits: digits });
}

export function eur(value, digits = 2) {
  if (value === null || value === undefined) return "—";
  return `€${num(value, digits)}`;
}

export function time(ms) {
  if (!ms) return "—";
  return new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
}

export function dateTime(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  return `${d.toISOString().slice(0, 10)} ${d.toLocaleTimeString("en-GB", { hour12: false })}`;
}

export function ago(ms, now = Date.now()) {
  if (!ms) return "—";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

export function short(text, head = 10) {
  if (!text) return "—";
  return text.length > head + 6 ? `${text.slice(0, head)}…${text.slice(-4)}` : text;
}

/** Green (clean) to red (dirty) for a carbon intensity in gCO2eq/kWh. */
export function intensityColour(gco2PerKwh) {
  if (gco2PerKwh === null || gco2PerKwh === undefined) return "#d5d9de";
  const stops = [
    [0, [26, 152, 80]],
    [100, [145, 207, 96]],
    [200, [254, 224, 139]],
    [300, [252, 141, 89]],
    [450, [215, 48, 39]],
  ];
  const x = Math.max(0, Math.min(450, gco2PerKwh));
  for (let i = 1; i < stops.length; i++) {
    const [x1, c1] = stops[i];
    const [x0, c0] = stops[i - 1];
    if (x <= x1) {
      const t = (x - x0) / (x1 - x0);
      const c = c0.map((v, k) => Math.round(v + t * (c1[k] - v)));
      return `rgb(${c.join(",")})`;
    }
  }
  return "rgb(215,48,39)";
}

export const INTENSITY_LEGEND = [0, 100, 200, 300, 450];
