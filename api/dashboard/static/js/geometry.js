// Real geometry for the project's zones (toogreen/domain/zones.py), from two npm packages that ship Natural
// Earth and US Census shapes as TopoJSON: world-atlas (countries, 1:50m) and us-atlas (states, 1:10m).
// A zone is drawn as the country or state whose grid it is; Great Britain is drawn as the United Kingdom,
// the smallest shape world-atlas has for it.

import { feature } from "topojson-client";
import { geoArea } from "d3-geo";

// zone code -> [atlas, feature id]: ISO 3166-1 numeric for countries, FIPS for US states
export const ZONE_SHAPES = {
  FR: ["world", "250"],
  DE: ["world", "276"],
  ES: ["world", "724"],
  PT: ["world", "620"],
  NL: ["world", "528"],
  BE: ["world", "056"],
  IT: ["world", "380"],
  GB: ["world", "826"],
  "US-CAL-CISO": ["us", "06"],
  "US-NY-NYIS": ["us", "36"],
  "US-TEX-ERCO": ["us", "48"],
};

// where a small zone's label goes, in pixels from its centroid (with a leader line), so neighbours stay legible
export const LABEL_OFFSETS = {
  NL: [4, -58],
  BE: [-48, 22],
  "US-NY-NYIS": [-6, -44],
};

let loaded = null;

/** The countries and the US states as GeoJSON features (fetched once, from /vendor/). */
export function loadAtlases() {
  loaded ??= Promise.all([
    fetch("/vendor/world-atlas/countries-50m.json").then((r) => {
      if (!r.ok) throw new Error(`world-atlas is not installed (${r.status}): run make venv`);
      return r.json();
    }),
    fetch("/vendor/us-atlas/states-10m.json").then((r) => {
      if (!r.ok) throw new Error(`us-atlas is not installed (${r.status}): run make venv`);
      return r.json();
    }),
  ]).then(([world, us]) => ({
    world: feature(world, world.objects.countries).features,
    us: feature(us, us.objects.states).features,
  }));
  return loaded;
}

/** The zone's shape, or null when the zone has none here. */
export function zoneFeature(atlases, zone) {
  const shape = ZONE_SHAPES[zone];
  if (!shape) return null;
  return atlases[shape[0]].find((f) => f.id === shape[1]) ?? null;
}

/** The largest polygon of a feature (mainland France, not French Guiana), to place a label on. */
export function mainPolygon(f) {
  if (f.geometry.type !== "MultiPolygon") return f;
  let best = null;
  let bestArea = -1;
  for (const coordinates of f.geometry.coordinates) {
    const polygon = { type: "Feature", geometry: { type: "Polygon", coordinates } };
    const area = geoArea(polygon);
    if (area > bestArea) [best, bestArea] = [polygon, area];
  }
  return best;
}
