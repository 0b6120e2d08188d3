// The fields of an index pattern, from `_field_caps`: their types and whether they aggregate, so
// editors offer numeric fields for metrics, date fields for date histograms and only aggregatable
// fields for buckets.

import { searchRequest } from "./api";

export interface FieldInfo {
  name: string;
  types: string[];
  aggregatable: boolean;
}

const NUMERIC_TYPES = new Set(["long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"]);
const DATE_TYPES = new Set(["date", "date_nanos"]);

export function isNumeric(field: FieldInfo): boolean {
  return field.types.length > 0 && field.types.every((type) => NUMERIC_TYPES.has(type));
}

export function isDate(field: FieldInfo): boolean {
  return field.types.length > 0 && field.types.every((type) => DATE_TYPES.has(type));
}

/** A pattern's fields, sorted by name (metadata fields left out). */
export async function fieldCaps(pattern: string, signal: AbortSignal): Promise<FieldInfo[]> {
  const answer = await searchRequest("GET", `${encodeURIComponent(pattern)}/_field_caps?fields=*&allow_no_indices=true&ignore_unavailable=true`, null, signal);
  if (answer.status !== 200) return [];
  const fields = (JSON.parse(answer.text) as { fields?: Record<string, Record<string, { aggregatable?: boolean }>> }).fields ?? {};
  return Object.entries(fields)
    .filter(([name]) => !name.startsWith("_"))
    .map(([name, types]) => ({
      name,
      types: Object.keys(types),
      aggregatable: Object.values(types).every((caps) => caps.aggregatable === true),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}
