// Visualizations: what one is (a saved object's attributes), the aggregation request it sends
// to the search API, the rows its answer becomes, and how those rows are drawn: a metric, a
// markdown panel, a data table, or an ECharts chart with a visually hidden table of the same rows,
// so the numbers and series a chart shows can be read by assistive technology (and by tests).

import { isAbort, searchRequest } from "./api";
import { drawChart, type ChartHandle } from "./charts";
import { clear, errorText, h } from "./dom";
import { type QueryState, boolQuery, rangeSpanMs } from "./querystate";
import { type IndexPatternAttributes, type SavedObject } from "./saved";

export const VIS_TYPES = ["metric", "line", "area", "bar", "hbar", "pie", "table", "heatmap", "markdown"] as const;
export type VisType = (typeof VIS_TYPES)[number];
export const VIS_TYPE_LABELS: Record<VisType, string> = {
  metric: "Metric", line: "Line", area: "Area", bar: "Vertical bar", hbar: "Horizontal bar",
  pie: "Pie / donut", table: "Data table", heatmap: "Heat map", markdown: "Markdown",
};
export const METRIC_AGGS = ["count", "avg", "sum", "min", "max", "median", "cardinality"] as const;
export type MetricAgg = (typeof METRIC_AGGS)[number];
export const BUCKET_AGGS = ["none", "date_histogram", "terms"] as const;
export type BucketAgg = (typeof BUCKET_AGGS)[number];
/** Fixed intervals the editor offers besides "auto". */
export const INTERVALS = ["1s", "5s", "10s", "30s", "1m", "5m", "10m", "30m", "1h", "3h", "12h", "1d", "7d", "30d"] as const;
export const SORTS = ["metric-desc", "metric-asc", "key-asc", "key-desc"] as const;
export type Sort = (typeof SORTS)[number];

/** Buckets an automatic interval aims for at most over the time range. */
const AUTO_BUCKETS_MAX = 60;
/** Largest `size` of a terms bucket or split the editor accepts; larger is clamped to it. */
export const TERMS_SIZE_MAX = 100;
/** Rows a data table or a chart's hidden table shows at most; the rest are counted. */
const TABLE_ROWS_MAX = 500;
/** Characters of a markdown panel: longer text is cut (saved objects are bounded too). */
const MARKDOWN_CHARS_MAX = 20_000;

/** A visualization's saved attributes. */
export interface VisState {
  title: string;
  type: VisType;
  /** The index pattern's saved object id. */
  pattern: string;
  metric: MetricAgg;
  metricField: string;
  /** A query of the visualization's own (Lucene or Query DSL), e.g. `message:hello`. */
  filter: string;
  bucket: BucketAgg;
  bucketField: string;
  interval: string;
  size: number;
  sort: Sort;
  /** A terms split into series (line/area/bar) or the heat map's y axis; "" for none. */
  split: string;
  splitSize: number;
  donut: boolean;
  markdown: string;
}

export function defaultVis(type: VisType = "metric"): VisState {
  return {
    title: "", type, pattern: "", metric: "count", metricField: "", filter: "",
    bucket: type === "metric" || type === "markdown" ? "none" : type === "pie" ? "terms" : "date_histogram",
    bucketField: "", interval: "auto", size: 10, sort: "metric-desc", split: "", splitSize: 5, donut: false, markdown: "",
  };
}

function oneOf<T extends string>(values: readonly T[], value: unknown, fallback: T): T {
  return values.includes(value as T) ? (value as T) : fallback;
}

function clampSize(value: unknown, fallback: number): number {
  const n = typeof value === "number" ? value : Number(value);
  return Number.isInteger(n) && n >= 1 ? Math.min(n, TERMS_SIZE_MAX) : fallback;
}

/** Any JSON (a URL's or a saved object's) as a well-formed state; unknown values fall back. */
export function normalizeVis(raw: unknown): VisState {
  const input = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  const type = oneOf(VIS_TYPES, input["type"], "metric");
  const base = defaultVis(type);
  const text = (key: string, fallback: string) => (typeof input[key] === "string" ? (input[key] as string) : fallback);
  return {
    title: text("title", ""),
    type,
    pattern: text("pattern", ""),
    metric: oneOf(METRIC_AGGS, input["metric"], "count"),
    metricField: text("metricField", ""),
    filter: text("filter", ""),
    bucket: oneOf(BUCKET_AGGS, input["bucket"], base.bucket),
    bucketField: text("bucketField", ""),
    interval: input["interval"] === "auto" || INTERVALS.includes(input["interval"] as (typeof INTERVALS)[number]) ? (input["interval"] as string) : "auto",
    size: clampSize(input["size"], base.size),
    sort: oneOf(SORTS, input["sort"], "metric-desc"),
    split: text("split", ""),
    splitSize: clampSize(input["splitSize"], base.splitSize),
    donut: input["donut"] === true,
    markdown: text("markdown", "").slice(0, MARKDOWN_CHARS_MAX),
  };
}

/** What the visualization needs from the search API, or why it cannot ask yet. */
export function missingChoice(vis: VisState): string | null {
  if (vis.type === "markdown") return null;
  if (!vis.pattern) return "pick an index pattern";
  if (vis.metric !== "count" && !vis.metricField) return `pick a field for ${vis.metric}`;
  if (vis.type !== "metric" && vis.bucket === "none") return "pick a bucket aggregation";
  if (vis.type !== "metric" && !vis.bucketField) return "pick a bucket field";
  if (vis.type === "heatmap" && !vis.split) return "pick a field for the heat map's y axis";
  return null;
}

export function metricLabel(vis: VisState): string {
  if (vis.metric === "count") return "Count";
  const name = { avg: "Average", sum: "Sum", min: "Min", max: "Max", median: "Median", cardinality: "Unique count" }[vis.metric];
  return `${name} of ${vis.metricField}`;
}

function metricAgg(vis: VisState): unknown {
  switch (vis.metric) {
    case "count": return null;
    case "median": return { percentiles: { field: vis.metricField, percents: [50] } };
    default: return { [vis.metric]: { field: vis.metricField } };
  }
}

/** Picks a fixed interval giving at most AUTO_BUCKETS_MAX buckets over `spanMs`. */
export function autoInterval(spanMs: number): string {
  const unit: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  for (const interval of INTERVALS) {
    const ms = Number(interval.slice(0, -1)) * (unit[interval.slice(-1)] ?? 1000);
    if (spanMs / ms <= AUTO_BUCKETS_MAX) return interval;
  }
  return "30d";
}

export function intervalMs(interval: string): number | null {
  const match = /^(\d+)([smhd])$/.exec(interval);
  if (!match) return null;
  return Number(match[1]) * ({ s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? "s"] ?? 1000);
}

function timeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

function bucketAgg(vis: VisState, state: QueryState, field: string, size: number, sorted: boolean): Record<string, unknown> {
  if (vis.bucket === "date_histogram") {
    let interval = vis.interval;
    if (interval === "auto") {
      const span = rangeSpanMs(state.range);
      // Unbounded: the server picks the interval from the data it finds.
      if (span === null) return { auto_date_histogram: { field, buckets: AUTO_BUCKETS_MAX, time_zone: timeZone() } };
      interval = autoInterval(span);
    }
    return { date_histogram: { field, fixed_interval: interval, time_zone: timeZone(), min_doc_count: 1 } };
  }
  const terms: Record<string, unknown> = { field, size };
  if (sorted) {
    const [by, direction] = vis.sort.split("-") as [string, string];
    terms["order"] = by === "key" ? { _key: direction } : vis.metric === "count" ? { _count: direction } : { m: direction };
  }
  return { terms };
}

/** The `_search` body of a visualization under a query state. Throws on a malformed query. */
export function visRequest(vis: VisState, state: QueryState, timeField: string | undefined): Record<string, unknown> {
  const body: Record<string, unknown> = { size: 0, track_total_hits: true, query: boolQuery(state, timeField, [vis.filter]) };
  const metric = metricAgg(vis);
  const metricAggs = metric ? { m: metric } : {};
  if (vis.type === "metric" || vis.bucket === "none") {
    // A count is the hits' total: no aggregation at all.
    if (metric) body["aggs"] = metricAggs;
    return body;
  }
  const bucket = { ...bucketAgg(vis, state, vis.bucketField, vis.size, true), aggs: metricAggs };
  const split = vis.split && vis.type !== "pie" ? vis.split : "";
  if (split) {
    // The split is outermost so every series is one of the top values over the whole range.
    const outer: Record<string, unknown> = { terms: { field: split, size: vis.splitSize, ...(vis.metric === "count" ? {} : { order: { m: "desc" } }) } };
    outer["aggs"] = { ...metricAggs, b: bucket };
    body["aggs"] = { s: outer };
  } else {
    body["aggs"] = { b: bucket };
  }
  return body;
}

/** One row of an answer: a bucket's key, its series (the split's value), its metric. */
export interface Row {
  key: string | number;
  series: string | null;
  value: number | null;
  count: number;
}

export interface VisResult {
  rows: Row[];
  /** The metric alone, for metric visualizations. */
  value: number | null;
  total: number;
  /** The interval of a date histogram's buckets, when known. */
  interval: string | null;
}

interface Bucket {
  key: string | number;
  key_as_string?: string;
  doc_count: number;
  m?: { value?: number | null; values?: Record<string, number | null> };
  b?: { buckets?: Bucket[]; interval?: string };
}

function metricOf(vis: VisState, holder: { doc_count: number; m?: Bucket["m"] }): number | null {
  if (vis.metric === "count") return holder.doc_count;
  const m = holder.m;
  if (!m) return null;
  if (m.values) return Object.values(m.values)[0] ?? null;
  return m.value ?? null;
}

export function parseAnswer(vis: VisState, answer: { hits?: { total?: { value?: number } }; aggregations?: Record<string, unknown> }): VisResult {
  const total = answer.hits?.total?.value ?? 0;
  const aggs = (answer.aggregations ?? {}) as { m?: Bucket["m"]; b?: Bucket["b"]; s?: { buckets?: Bucket[] } };
  const result: VisResult = { rows: [], value: metricOf(vis, { doc_count: total, m: aggs.m }), total, interval: null };
  const take = (buckets: Bucket[] | undefined, series: string | null) => {
    for (const bucket of buckets ?? []) result.rows.push({ key: bucket.key, series, value: metricOf(vis, bucket), count: bucket.doc_count });
  };
  if (aggs.s) {
    for (const split of aggs.s.buckets ?? []) {
      take(split.b?.buckets, String(split.key_as_string ?? split.key));
      result.interval ??= split.b?.interval ?? null;
    }
  } else if (aggs.b) {
    take(aggs.b.buckets, null);
    result.interval = aggs.b.interval ?? null;
  }
  if (vis.bucket === "date_histogram" && !result.interval && vis.interval !== "auto") result.interval = vis.interval;
  return result;
}

/** A number as the page shows it: integers whole, others to at most 3 decimals. */
export function formatNumber(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return "–";
  return Number.isInteger(value) ? String(value) : String(Number(value.toFixed(3)));
}

export function formatKey(vis: VisState, key: string | number): string {
  return vis.bucket === "date_histogram" && typeof key === "number" ? new Date(key).toLocaleString() : String(key);
}

/** What a click on a bucket asks for: a filter pill, a narrower time range, or both. */
export interface BucketClick {
  filters: Array<{ field: string; value: string | number | boolean }>;
  range?: { from: string; to: string };
}

export function clickFor(vis: VisState, row: Row, interval: string | null): BucketClick {
  const click: BucketClick = { filters: [] };
  if (vis.bucket === "terms") click.filters.push({ field: vis.bucketField, value: row.key });
  if (vis.bucket === "date_histogram" && typeof row.key === "number") {
    const width = intervalMs(interval ?? "") ?? 1000;
    click.range = { from: String(row.key), to: String(row.key + width - 1) };
  }
  if (row.series !== null && vis.split) click.filters.push({ field: vis.split, value: row.series });
  return click;
}

/** Markdown as DOM (headings, paragraphs, lists, bold, italic, code): never as HTML. */
export function renderMarkdown(text: string): HTMLElement {
  const root = h("div", { class: "markdown" });
  let list: HTMLElement | null = null;
  const inline = (line: string): Node[] => {
    const nodes: Node[] = [];
    const pattern = /(\*\*[^*]+\*\*|\*[^*]+\*|`[^`]+`)/g;
    let last = 0;
    for (const match of line.matchAll(pattern)) {
      const at = match.index ?? 0;
      if (at > last) nodes.push(document.createTextNode(line.slice(last, at)));
      const token = match[0];
      if (token.startsWith("**")) nodes.push(h("strong", {}, token.slice(2, -2)));
      else if (token.startsWith("`")) nodes.push(h("code", {}, token.slice(1, -1)));
      else nodes.push(h("em", {}, token.slice(1, -1)));
      last = at + token.length;
    }
    if (last < line.length) nodes.push(document.createTextNode(line.slice(last)));
    return nodes;
  };
  for (const raw of text.slice(0, MARKDOWN_CHARS_MAX).split("\n")) {
    const line = raw.trimEnd();
    const item = /^\s*[-*]\s+(.*)$/.exec(line);
    if (item) {
      list ??= root.appendChild(h("ul"));
      list.appendChild(h("li", {}, ...inline(item[1] ?? "")));
      continue;
    }
    list = null;
    const heading = /^(#{1,3})\s+(.*)$/.exec(line);
    if (heading) {
      const level = (heading[1] ?? "#").length;
      root.appendChild(h(level === 1 ? "h2" : level === 2 ? "h3" : "h4", {}, ...inline(heading[2] ?? "")));
    } else if (line !== "") {
      root.appendChild(h("p", {}, ...inline(line)));
    }
  }
  return root;
}

/** A table of the rows: visible for data tables, visually hidden under a chart. */
function rowsTable(vis: VisState, result: VisResult, caption: string, hidden: boolean, onClick?: (click: BucketClick) => void): HTMLElement {
  const keyHeader = vis.bucket === "date_histogram" ? vis.bucketField || "time" : vis.bucketField;
  const withSeries = result.rows.some((row) => row.series !== null);
  const body = h("tbody");
  for (const row of result.rows.slice(0, TABLE_ROWS_MAX)) {
    const filterButton = onClick
      ? h("button", { type: "button", "aria-label": `Filter on ${formatKey(vis, row.key)}${row.series !== null ? ` ${row.series}` : ""}` }, "+")
      : null;
    filterButton?.addEventListener("click", () => onClick?.(clickFor(vis, row, result.interval)));
    body.appendChild(h("tr", { "data-key": String(row.key), "data-series": row.series ?? undefined, "data-value": row.value === null ? "" : String(row.value) },
      withSeries ? h("td", {}, row.series ?? "") : null,
      h("td", {}, formatKey(vis, row.key)),
      h("td", { class: "number" }, formatNumber(row.value)),
      filterButton ? h("td", {}, filterButton) : null));
  }
  const table = h("table", { class: hidden ? "chart-data visually-hidden" : "chart-data data-table" },
    h("caption", { class: hidden ? undefined : "visually-hidden" }, caption),
    h("thead", {}, h("tr", {},
      withSeries ? h("th", { scope: "col" }, vis.split) : null,
      h("th", { scope: "col" }, keyHeader),
      h("th", { scope: "col" }, metricLabel(vis)),
      onClick ? h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Filter")) : null)),
    body);
  if (result.rows.length > TABLE_ROWS_MAX) {
    return h("div", {}, table, h("p", { class: "hint" }, `${result.rows.length - TABLE_ROWS_MAX} more rows`));
  }
  return table;
}

export interface RenderedVis {
  /** Shows a new answer of the same visualization in place; false when it must be drawn anew. */
  update?(result: VisResult): boolean;
  dispose(): void;
}

/**
 * Draws a result into `target` (emptied first). `onClick` receives what a click on a bucket
 * (a chart's point, bar or slice, or a data table's filter button) asks for.
 */
export function renderVis(target: HTMLElement, vis: VisState, result: VisResult, onClick: (click: BucketClick) => void): RenderedVis {
  clear(target);
  const title = vis.title || VIS_TYPE_LABELS[vis.type];
  if (vis.type === "metric") {
    const shown = formatNumber(result.value);
    target.appendChild(h("div", { class: "metric", role: "figure", "aria-label": `${title}: ${shown}`, "data-value": shown },
      h("span", { class: "metric-value", "aria-hidden": "true" }, shown),
      h("span", { class: "metric-label", "aria-hidden": "true" }, vis.filter ? `${metricLabel(vis)} · ${vis.filter}` : metricLabel(vis))));
    return { dispose() {} };
  }
  if (vis.type === "table") {
    target.appendChild(rowsTable(vis, result, title, false, onClick));
    return { dispose() {} };
  }
  if (result.rows.length === 0) {
    target.appendChild(h("p", { class: "placeholder" }, "no results in this range"));
    return { dispose() {} };
  }
  // An image to assistive technology (ECharts names it); the table that follows has its numbers.
  const canvas = h("div", { class: "chart", role: "img" });
  const caption = `${title}: ${metricLabel(vis)} by ${vis.bucketField}${vis.split ? ` and ${vis.split}` : ""}`;
  let table = rowsTable(vis, result, caption, true);
  let current = result;
  target.append(canvas, table);
  const handle: ChartHandle = drawChart(canvas, vis, result, title, (row) => onClick(clickFor(vis, row, current.interval)));
  return {
    update(next) {
      if (next.rows.length === 0) return false;
      current = next;
      handle.update(next);
      const replacement = rowsTable(vis, next, caption, true);
      table.replaceWith(replacement);
      table = replacement;
      return true;
    },
    dispose: () => handle.dispose(),
  };
}

export function renderMarkdownVis(target: HTMLElement, vis: VisState): RenderedVis {
  clear(target);
  target.appendChild(renderMarkdown(vis.markdown));
  return { dispose() {} };
}

/** Where a visualization's requests go and where its answer is drawn; cancellable at any time. */
export class VisRunner {
  private inFlight: AbortController | null = null;
  private rendered: RenderedVis | null = null;
  /** The visualization `rendered` shows, as JSON: the same one again is updated in place. */
  private renderedVis = "";

  constructor(
    private readonly target: HTMLElement,
    private readonly status: HTMLElement,
    private readonly signal: AbortSignal,
  ) {
    signal.addEventListener("abort", () => this.dispose(), { once: true });
  }

  /** Runs the visualization under `state`, cancelling a run still in flight. */
  async run(vis: VisState, pattern: SavedObject<IndexPatternAttributes> | undefined, state: QueryState, onClick: (click: BucketClick) => void): Promise<void> {
    this.inFlight?.abort();
    if (vis.type === "markdown") {
      this.replace(renderMarkdownVis(this.target, vis));
      this.status.textContent = "";
      return;
    }
    const missing = missingChoice(vis) ?? (pattern ? null : `the index pattern ${vis.pattern} does not exist`);
    if (missing) {
      this.replace(null);
      clear(this.target);
      this.target.appendChild(h("p", { class: "placeholder" }, `To preview, ${missing}.`));
      this.status.textContent = "";
      return;
    }
    const controller = new AbortController();
    this.inFlight = controller;
    if (this.signal.aborted) return;
    this.status.textContent = "loading…";
    this.status.className = "vis-status";
    try {
      const body = visRequest(vis, state, pattern?.attributes.timeFieldName);
      const path = `${encodeURIComponent(pattern?.attributes.title ?? "")}/_search?allow_no_indices=true&ignore_unavailable=true`;
      const answer = await searchRequest("POST", path, JSON.stringify(body), controller.signal);
      if (answer.status !== 200) {
        const error = JSON.parse(answer.text) as { error?: { type?: string; reason?: string } };
        throw new Error(`${answer.status}: ${error.error?.type ?? ""} ${error.error?.reason ?? answer.text}`);
      }
      const result = parseAnswer(vis, JSON.parse(answer.text) as Parameters<typeof parseAnswer>[1]);
      const signature = JSON.stringify(vis);
      // An auto-refresh of the same chart keeps it (its tooltip, its legend's choices).
      if (!(signature === this.renderedVis && this.rendered?.update?.(result))) {
        this.replace(renderVis(this.target, vis, result, onClick));
        this.renderedVis = signature;
      }
      this.status.textContent = `${result.total} documents`;
    } catch (error) {
      if (isAbort(error)) return;
      this.status.textContent = `failed: ${errorText(error)}`;
      this.status.className = "vis-status failed";
    } finally {
      if (this.inFlight === controller) this.inFlight = null;
    }
  }

  cancel(): void {
    this.inFlight?.abort();
  }

  private replace(next: RenderedVis | null): void {
    this.rendered?.dispose();
    this.rendered = next;
    this.renderedVis = "";
  }

  dispose(): void {
    this.inFlight?.abort();
    this.replace(null);
  }
}
