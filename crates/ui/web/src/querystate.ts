// The query state Visualize and Dashboards share: a query bar's text, filter pills and a time
// range, all kept in the URL (`q`, `filters`, `from`, `to`), turned into one `bool` query for the
// search API, and drawn as the controls that change them.

import { clear, h } from "./dom";
import { queryFromText } from "./views/discover";

/** A filter pill: documents whose field has (or, negated, has not) the value. */
export interface Filter {
  field: string;
  value: string | number | boolean;
  negate: boolean;
}

/** The time range: date math (`now-15m`), epoch milliseconds, or "" for unbounded. */
export interface TimeRange {
  from: string;
  to: string;
}

export interface QueryState {
  query: string;
  filters: Filter[];
  range: TimeRange;
}

/** Quick ranges offered by the time pickers; "" is all time. */
export const QUICK_RANGES: Array<[string, string]> = [
  ["now-1m", "Last 1 minute"], ["now-15m", "Last 15 minutes"], ["now-1h", "Last 1 hour"],
  ["now-24h", "Last 24 hours"], ["now-7d", "Last 7 days"], ["now-30d", "Last 30 days"],
  ["now-1y", "Last 1 year"], ["", "All time"],
];
const DEFAULT_FROM = "now-15m";

export function parseFilters(text: string | null): Filter[] {
  if (!text) return [];
  try {
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed)) return [];
    return parsed.filter((item): item is Filter =>
      typeof item === "object" && item !== null && typeof (item as Filter).field === "string"
      && ["string", "number", "boolean"].includes(typeof (item as Filter).value))
      .map((item) => ({ field: item.field, value: item.value, negate: item.negate === true }));
  } catch {
    return [];
  }
}

/** The state the URL's params hold (`from=all` is all time, as Discover writes it). */
export function stateFromParams(params: URLSearchParams): QueryState {
  const from = params.get("from") ?? DEFAULT_FROM;
  return {
    query: params.get("q") ?? "",
    filters: parseFilters(params.get("filters")),
    range: { from: from === "all" ? "" : from, to: params.get("to") ?? "now" },
  };
}

export function stateToParams(state: QueryState): Record<string, string | null> {
  return {
    q: state.query,
    filters: state.filters.length ? JSON.stringify(state.filters) : null,
    from: state.range.from || "all",
    to: state.range.to,
  };
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, M: 2_592_000_000, y: 31_536_000_000 };

/** A bound as epoch milliseconds: epoch digits, `now` or `now-<n><unit>`; null when unknown. */
export function boundToEpoch(bound: string, now = Date.now()): number | null {
  if (/^\d+$/.test(bound)) return Number(bound);
  if (bound === "now") return now;
  const relative = /^now-(\d+)([smhdwMy])$/.exec(bound);
  if (!relative) return null;
  return now - Number(relative[1]) * (UNIT_MS[relative[2] ?? "s"] ?? 1000);
}

/** The span of a range in milliseconds, or null when it is unbounded. */
export function rangeSpanMs(range: TimeRange): number | null {
  if (!range.from) return null;
  const from = boundToEpoch(range.from);
  const to = boundToEpoch(range.to || "now");
  return from === null || to === null ? null : Math.max(0, to - from);
}

/**
 * One `bool` query: the query bar's text (and an extra query of a visualization or saved search)
 * must match, the pills filter, the time range applies to the pattern's time field.
 * Throws when a query bar's text is malformed Query DSL.
 */
export function boolQuery(state: QueryState, timeField: string | undefined, extraQueries: string[] = []): unknown {
  const must = [state.query, ...extraQueries].filter((text) => text.trim() !== "").map(queryFromText);
  const filter: unknown[] = [];
  const mustNot: unknown[] = [];
  if (timeField && state.range.from) {
    filter.push({ range: { [timeField]: { gte: state.range.from, lte: state.range.to || "now", format: "strict_date_optional_time||epoch_millis" } } });
  }
  for (const pill of state.filters) (pill.negate ? mustNot : filter).push({ match_phrase: { [pill.field]: pill.value } });
  return { bool: { must: must.length ? must : [{ match_all: {} }], filter, must_not: mustNot } };
}

function epochToLocal(epoch: number): string {
  return new Date(epoch).toLocaleString();
}

/** The time range control: quick ranges, plus the current absolute range when there is one. */
export function timeRangeSelect(range: TimeRange, onChange: (range: TimeRange) => void): HTMLSelectElement {
  const select = h("select", { "aria-label": "Time range" }, ...QUICK_RANGES.map(([value, label]) => h("option", { value }, label)));
  if (/^\d+$/.test(range.from)) {
    const to = /^\d+$/.test(range.to) ? epochToLocal(Number(range.to)) : range.to;
    select.appendChild(h("option", { value: "absolute" }, `${epochToLocal(Number(range.from))} → ${to}`));
    select.value = "absolute";
  } else {
    select.value = QUICK_RANGES.some(([value]) => value === range.from) ? range.from : DEFAULT_FROM;
  }
  select.addEventListener("change", () => {
    if (select.value !== "absolute") onChange({ from: select.value, to: "now" });
  });
  return select;
}

/** Draws the pills into `list`: each can be inverted or removed. */
export function drawPills(list: HTMLElement, filters: Filter[], onChange: (filters: Filter[]) => void): void {
  clear(list);
  for (const [index, pill] of filters.entries()) {
    const name = `${pill.field}: ${String(pill.value)}`;
    const invert = h("button", { type: "button", class: "pill-text", "aria-label": `Invert filter ${name}` }, `${pill.negate ? "NOT " : ""}${name}`);
    invert.addEventListener("click", () => onChange(filters.map((f, i) => (i === index ? { ...f, negate: !f.negate } : f))));
    const remove = h("button", { type: "button", "aria-label": `Remove filter ${name}` }, "×");
    remove.addEventListener("click", () => onChange(filters.filter((_, i) => i !== index)));
    list.appendChild(h("li", { class: pill.negate ? "pill negated" : "pill" }, invert, remove));
  }
}

/** Adds a pill (replacing one on the same field and value). */
export function withFilter(filters: Filter[], field: string, value: string | number | boolean): Filter[] {
  return [...filters.filter((f) => !(f.field === field && f.value === value)), { field, value, negate: false }];
}

/** The shared query bar: query text, time range, a refresh button and the filter pills. */
export interface QueryBar {
  /** The bar's controls (one toolbar row). */
  controls: HTMLElement;
  /** The pills' list, placed where the view wants it. */
  pills: HTMLElement;
  /** Shows a state changed elsewhere (a click on a chart). */
  show(state: QueryState): void;
}

export function queryBar(initial: QueryState, onChange: (state: QueryState) => void, extra: HTMLElement[] = []): QueryBar {
  let state = initial;
  const input = h("input", { type: "search", class: "query-bar", "aria-label": "Query (Lucene syntax or Query DSL)", placeholder: "message:bye, or {\"match\": {...}}" });
  input.value = state.query;
  const rangeSlot = h("span", { class: "range-slot" });
  const refresh = h("button", { type: "button", class: "primary" }, "Refresh");
  const pills = h("ul", { class: "pills", "aria-label": "Filters" });
  const change = (next: QueryState) => {
    state = next;
    draw();
    onChange(state);
  };
  const draw = () => {
    clear(rangeSlot);
    rangeSlot.appendChild(timeRangeSelect(state.range, (range) => change({ ...state, range })));
    drawPills(pills, state.filters, (filters) => change({ ...state, filters }));
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") change({ ...state, query: input.value });
  });
  refresh.addEventListener("click", () => change({ ...state, query: input.value }));
  draw();
  return {
    controls: h("div", { class: "toolbar" }, h("div", { class: "query-wrap" }, input), rangeSlot, ...extra, refresh),
    pills,
    show(next) {
      state = next;
      input.value = state.query;
      draw();
    },
  };
}
