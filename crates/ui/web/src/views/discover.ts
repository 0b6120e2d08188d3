// Discover: index patterns (created from the indices that exist, `_resolve/index`, with a time
// field picked from `_field_caps`, saved as saved objects), a query bar (Lucene syntax sent as
// `query_string`, or Query DSL when it starts with `{`), a time picker (quick ranges as date math,
// or absolute times in the browser's zone) and a table of the newest documents, each expandable
// as JSON, newest first by the pattern's time field (indices without it sort it as missing, as
// Kibana asks with `unmapped_type`). Everything is in the URL.

import { isAbort, searchRequest } from "../api";
import { clear, errorText, h } from "../dom";
import { highlightJson } from "../highlight";
import { updateParams } from "../router";
import { type IndexPatternAttributes, type SavedObject, idFromTitle, listSaved, saveObject } from "../saved";

/** A saved search: what Discover shows, by name (the URL's state, kept as a saved object). */
interface SearchAttributes {
  title: string;
  pattern: string;
  query: string;
  filters: Filter[];
  from: string;
  to: string;
}
import type { View } from "../view";

/** Field names the query bar's completion offers at once. */
const QUERY_COMPLETIONS_MAX = 10;
/** Documents shown per search. */
const PAGE_SIZE = 50;
/** Characters of a document's summary in the table. */
const SUMMARY_CHARS_MAX = 300;
const QUICK_RANGES: Array<[string, string]> = [
  ["now-15m", "Last 15 minutes"], ["now-1h", "Last 1 hour"], ["now-24h", "Last 24 hours"],
  ["now-7d", "Last 7 days"], ["now-30d", "Last 30 days"], ["now-1y", "Last 1 year"], ["", "All time"],
];

interface Hit {
  _index: string;
  _id: string;
  _source?: Record<string, unknown>;
  sort?: unknown[];
}

interface SearchAnswer {
  hits: { total: { value: number; relation: string }; hits: Hit[] };
  took: number;
  aggregations?: { histogram?: { buckets: Array<{ key: number; key_as_string?: string; doc_count: number }>; interval?: string } };
}

/** Documents shown on each side of one by "view surrounding documents". */
const SURROUNDING = 5;

/** Bars of the hit histogram (auto_date_histogram picks an interval that gives at most this). */
const HISTOGRAM_BUCKETS = 40;

/** The query bar's text as a query: Query DSL JSON, Lucene syntax, or everything. */
export function queryFromText(text: string): unknown {
  const trimmed = text.trim();
  if (trimmed === "") return { match_all: {} };
  if (trimmed.startsWith("{")) return JSON.parse(trimmed);
  return { query_string: { query: trimmed } };
}

/** A `datetime-local` input's value (the browser's zone) as epoch milliseconds, or "". */
function localToEpoch(value: string): string {
  if (!value) return "";
  const time = new Date(value).getTime();
  return Number.isNaN(time) ? "" : String(time);
}

function epochToLocal(value: string | null): string {
  if (!value || !/^\d+$/.test(value)) return "";
  const date = new Date(Number(value));
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function valueAt(source: Record<string, unknown> | undefined, path: string): unknown {
  let value: unknown = source;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** A filter pill: documents whose field has (or, negated, has not) the value. */
export interface Filter {
  field: string;
  value: string | number | boolean;
  negate: boolean;
}

/** Values shown per field in the field list. */
const TOP_VALUES_SHOWN = 5;
/** Fields listed at most; the rest are counted. */
const FIELDS_SHOWN_MAX = 100;

function parseFilters(text: string | null): Filter[] {
  if (!text) return [];
  try {
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed)) return [];
    return parsed.filter((item): item is Filter =>
      typeof item === "object" && item !== null && typeof (item as Filter).field === "string"
      && ["string", "number", "boolean"].includes(typeof (item as Filter).value));
  } catch {
    return [];
  }
}

/** Scalar values of a source by dotted path (arrays give each element). */
export function flatten(source: unknown, prefix = "", out = new Map<string, Array<string | number | boolean>>()): Map<string, Array<string | number | boolean>> {
  if (Array.isArray(source)) {
    for (const item of source) flatten(item, prefix, out);
  } else if (source !== null && typeof source === "object") {
    for (const [key, value] of Object.entries(source as Record<string, unknown>)) {
      flatten(value, prefix ? `${prefix}.${key}` : key, out);
    }
  } else if (typeof source === "string" || typeof source === "number" || typeof source === "boolean") {
    const values = out.get(prefix) ?? [];
    values.push(source);
    out.set(prefix, values);
  }
  return out;
}

/** Each field's most frequent values among the hits shown, as Kibana's field list does. */
export function topValues(sources: unknown[]): Array<{ field: string; present: number; values: Array<[string | number | boolean, number]> }> {
  const perField = new Map<string, Map<string | number | boolean, number>>();
  const present = new Map<string, number>();
  for (const source of sources) {
    for (const [field, values] of flatten(source)) {
      present.set(field, (present.get(field) ?? 0) + 1);
      const counts = perField.get(field) ?? new Map<string | number | boolean, number>();
      for (const value of new Set(values)) counts.set(value, (counts.get(value) ?? 0) + 1);
      perField.set(field, counts);
    }
  }
  return [...perField.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([field, counts]) => ({
    field,
    present: present.get(field) ?? 0,
    values: [...counts.entries()].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0]))).slice(0, TOP_VALUES_SHOWN),
  }));
}

function patternForm(onSaved: (pattern: SavedObject<IndexPatternAttributes>) => void, signal: AbortSignal): HTMLElement {
  const title = h("input", { type: "text", "aria-label": "New index pattern", placeholder: "example-*" });
  const matches = h("p", { class: "hint", role: "status" });
  const timeField = h("select", { "aria-label": "Time field" }, h("option", { value: "" }, "no time field"));
  const save = h("button", { type: "button", class: "primary" }, "Create index pattern");
  let timer: number | undefined;
  const lookUp = async () => {
    const pattern = title.value.trim();
    clear(timeField);
    timeField.appendChild(h("option", { value: "" }, "no time field"));
    if (!pattern) return;
    try {
      const resolved = await searchRequest("GET", `_resolve/index/${encodeURIComponent(pattern)}`, null, signal);
      const names = resolved.status === 200
        ? ((JSON.parse(resolved.text) as { indices?: Array<{ name: string }> }).indices ?? []).map((index) => index.name)
        : [];
      matches.textContent = names.length ? `matches ${names.join(", ")}` : "matches no index yet";
      const caps = await searchRequest("GET", `${encodeURIComponent(pattern)}/_field_caps?fields=*&allow_no_indices=true`, null, signal);
      if (caps.status !== 200) return;
      const fields = (JSON.parse(caps.text) as { fields?: Record<string, Record<string, unknown>> }).fields ?? {};
      const dates = Object.entries(fields).filter(([, types]) => "date" in types || "date_nanos" in types).map(([name]) => name).sort();
      for (const name of dates) timeField.appendChild(h("option", { value: name }, name));
      if (dates.length > 0) timeField.value = dates[0] ?? "";
    } catch (error) {
      if (!isAbort(error)) matches.textContent = errorText(error);
    }
  };
  title.addEventListener("input", () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void lookUp(), 250);
  });
  save.addEventListener("click", async () => {
    const pattern = title.value.trim();
    if (!pattern) return;
    try {
      const attributes: IndexPatternAttributes = { title: pattern };
      if (timeField.value) attributes.timeFieldName = timeField.value;
      onSaved(await saveObject("index-pattern", idFromTitle(pattern), attributes, signal));
    } catch (error) {
      if (!isAbort(error)) matches.textContent = `not saved: ${errorText(error)}`;
    }
  });
  return h("section", { class: "card pattern-form", "aria-label": "New index pattern" },
    h("h2", {}, "New index pattern"), h("div", { class: "toolbar" }, title, timeField, save), matches);
}

export const discoverView: View = {
  title: "Discover",
  mount(container, params, signal) {
    const patternSelect = h("select", { "aria-label": "Index pattern" });
    const queryInput = h("input", { type: "search", class: "query-bar", "aria-label": "Query (Lucene syntax or Query DSL)", placeholder: "message:bye, or {\"match\": {...}}" });
    queryInput.value = params.get("q") ?? "";
    const rangeSelect = h("select", { "aria-label": "Time range" },
      ...QUICK_RANGES.map(([value, label]) => h("option", { value }, label)),
      h("option", { value: "absolute" }, "Absolute…"));
    const fromInput = h("input", { type: "datetime-local", step: "1", "aria-label": "From", hidden: true });
    const toInput = h("input", { type: "datetime-local", step: "1", "aria-label": "To", hidden: true });
    const from = params.get("from") ?? "now-15m";
    const to = params.get("to") ?? "now";
    if (/^\d+$/.test(from)) {
      rangeSelect.value = "absolute";
      fromInput.value = epochToLocal(from);
      toInput.value = epochToLocal(to);
      fromInput.hidden = toInput.hidden = false;
    } else {
      const quick = from === "all" ? "" : from;
      rangeSelect.value = QUICK_RANGES.some(([value]) => value === quick) ? quick : "now-15m";
    }
    const searchButton = h("button", { type: "button", class: "primary" }, "Search");
    const searchName = h("input", { type: "text", "aria-label": "Saved search name", placeholder: "name" });
    const saveSearchButton = h("button", { type: "button" }, "Save search");
    const openSelect = h("select", { "aria-label": "Open saved search" });
    const savedStatus = h("span", { class: "hint", role: "status" });
    const status = h("p", { class: "response-status", role: "status", "aria-live": "polite" });
    const table = h("div", { class: "records" });
    const formSlot = h("div");
    const pills = h("ul", { class: "pills", "aria-label": "Filters" });
    const chart = h("div", { class: "histogram", role: "group", hidden: true });
    const fieldList = h("div", { class: "field-list", "aria-label": "Fields" });
    let filters = parseFilters(params.get("filters"));
    let columns = (params.get("columns") ?? "").split(",").filter((column) => column !== "");
    let patterns: Array<SavedObject<IndexPatternAttributes>> = [];
    let inFlight: AbortController | null = null;

    const addFilter = (field: string, value: string | number | boolean, negate: boolean) => {
      filters = [...filters.filter((f) => !(f.field === field && f.value === value)), { field, value, negate }];
      void search();
    };
    const drawPills = () => {
      clear(pills);
      for (const [index, pill] of filters.entries()) {
        const remove = h("button", { type: "button", "aria-label": `Remove filter ${pill.field}: ${String(pill.value)}` }, "×");
        remove.addEventListener("click", () => {
          filters = filters.filter((_, i) => i !== index);
          void search();
        });
        const invert = h("button", { type: "button", class: "pill-text", "aria-label": `Invert filter ${pill.field}: ${String(pill.value)}` },
          `${pill.negate ? "NOT " : ""}${pill.field}: ${String(pill.value)}`);
        invert.addEventListener("click", () => {
          filters = filters.map((f, i) => (i === index ? { ...f, negate: !f.negate } : f));
          void search();
        });
        pills.appendChild(h("li", { class: pill.negate ? "pill negated" : "pill" }, invert, remove));
      }
    };
    type Buckets = NonNullable<NonNullable<SearchAnswer["aggregations"]>["histogram"]>["buckets"];
    let shownBuckets: Buckets = [];
    let bars: HTMLElement[] = [];
    /** Zooms to buckets `from` to `to` (indexes, inclusive): from the first's start to the last's end. */
    const zoomTo = (from: number, to: number) => {
      const first = shownBuckets[Math.min(from, to)];
      if (!first) return;
      const next = shownBuckets[Math.max(from, to) + 1]?.key;
      rangeSelect.value = "absolute";
      fromInput.hidden = toInput.hidden = false;
      fromInput.value = epochToLocal(String(first.key));
      // The last bucket ends now (its end is not in the answer); a second more covers it.
      toInput.value = epochToLocal(String(next !== undefined ? next - 1000 : Date.now() + 1000));
      void search();
    };
    /** The bar whose column (not only its filled height) is under `x`, or the nearest end. */
    const barAt = (x: number): number => {
      const index = bars.findIndex((bar) => x < bar.getBoundingClientRect().right);
      return index < 0 ? bars.length - 1 : index;
    };
    // Dragging across the bars selects their span and zooms to it on release; a click without
    // a drag zooms to its one bar (the bar's own button, which the keyboard reaches too).
    let dragFrom: number | null = null;
    const highlight = (from: number, to: number) => bars.forEach((bar, i) =>
      bar.classList.toggle("in-selection", i >= Math.min(from, to) && i <= Math.max(from, to)));
    chart.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || bars.length === 0) return;
      dragFrom = barAt(event.clientX);
    });
    chart.addEventListener("pointermove", (event) => {
      if (dragFrom !== null) highlight(dragFrom, barAt(event.clientX));
    });
    const endDrag = (event: PointerEvent) => {
      if (dragFrom === null) return;
      const from = dragFrom;
      const to = barAt(event.clientX);
      dragFrom = null;
      highlight(0, -1);
      if (event.type === "pointerup" && to !== from) zoomTo(from, to);
    };
    window.addEventListener("pointerup", endDrag);
    window.addEventListener("pointercancel", endDrag);
    signal.addEventListener("abort", () => {
      window.removeEventListener("pointerup", endDrag);
      window.removeEventListener("pointercancel", endDrag);
    }, { once: true });
    const drawHistogram = (histogram: NonNullable<SearchAnswer["aggregations"]>["histogram"]) => {
      clear(chart);
      chart.hidden = !histogram;
      shownBuckets = histogram?.buckets ?? [];
      bars = [];
      if (!histogram) return;
      const buckets = histogram.buckets;
      const highest = Math.max(1, ...buckets.map((bucket) => bucket.doc_count));
      const total = buckets.reduce((sum, bucket) => sum + bucket.doc_count, 0);
      chart.setAttribute("aria-label", `Hits over time: ${total} in ${buckets.length} intervals${histogram.interval ? ` of ${histogram.interval}` : ""}`);
      buckets.forEach((bucket, index) => {
        const label = `${new Date(bucket.key).toLocaleString()}: ${bucket.doc_count}`;
        const bar = h("button", { type: "button", class: "bar", title: label, "aria-label": `${label}; zoom in`, "data-count": String(bucket.doc_count) });
        // Heights through the CSSOM: the CSP forbids style attributes, not this.
        bar.style.height = `${Math.round((bucket.doc_count / highest) * 100)}%`;
        bar.addEventListener("click", () => zoomTo(index, index));
        bars.push(bar);
        chart.appendChild(bar);
      });
    };
    const drawFields = (sources: unknown[]) => {
      clear(fieldList);
      const fields = topValues(sources);
      fieldList.appendChild(h("h2", {}, `Fields (top values in ${sources.length} documents)`));
      for (const field of fields.slice(0, FIELDS_SHOWN_MAX)) {
        const values = h("ul", { class: "top-values" });
        for (const [value, n] of field.values) {
          const plus = h("button", { type: "button", "aria-label": `Filter for ${field.field}: ${String(value)}` }, "+");
          const minus = h("button", { type: "button", "aria-label": `Filter out ${field.field}: ${String(value)}` }, "−");
          plus.addEventListener("click", () => addFilter(field.field, value, false));
          minus.addEventListener("click", () => addFilter(field.field, value, true));
          values.appendChild(h("li", {}, h("span", { class: "mono" }, String(value)), h("span", { class: "hint" }, ` ${n}`), plus, minus));
        }
        const shown = columns.includes(field.field);
        const columnButton = h("button", { type: "button", class: "column-toggle", "aria-pressed": String(shown),
          "aria-label": `${shown ? "Remove" : "Add"} column ${field.field}` }, shown ? "−col" : "+col");
        columnButton.addEventListener("click", () => {
          columns = shown ? columns.filter((column) => column !== field.field) : [...columns, field.field];
          void search();
        });
        fieldList.appendChild(h("div", { class: "field" },
          h("details", {}, h("summary", {}, `${field.field} `, h("span", { class: "hint" }, `${field.present}`)), values),
          columnButton));
      }
      if (fields.length > FIELDS_SHOWN_MAX) fieldList.appendChild(h("p", { class: "hint" }, `${fields.length - FIELDS_SHOWN_MAX} more fields`));
    };

    const selected = () => patterns.find((pattern) => pattern.id === patternSelect.value);

    const range = (): { gte?: string; lte?: string } => {
      if (rangeSelect.value === "absolute") {
        const bounds: { gte?: string; lte?: string } = {};
        const gte = localToEpoch(fromInput.value);
        const lte = localToEpoch(toInput.value);
        if (gte) bounds.gte = gte;
        if (lte) bounds.lte = lte;
        return bounds;
      }
      return rangeSelect.value ? { gte: rangeSelect.value, lte: "now" } : {};
    };

    const search = async () => {
      const pattern = selected();
      if (!pattern) return;
      const bounds = range();
      drawPills();
      updateParams({
        pattern: pattern.id,
        q: queryInput.value,
        filters: filters.length ? JSON.stringify(filters) : null,
        columns: columns.join(","),
        from: rangeSelect.value === "absolute" ? (bounds.gte ?? "") : rangeSelect.value || "all",
        to: rangeSelect.value === "absolute" ? (bounds.lte ?? "") : "now",
      });
      inFlight?.abort();
      const controller = new AbortController();
      inFlight = controller;
      signal.addEventListener("abort", () => controller.abort(), { once: true });
      let query: unknown;
      try {
        query = queryFromText(queryInput.value);
      } catch (error) {
        status.textContent = `the query is not JSON: ${errorText(error)}`;
        status.className = "response-status failed";
        return;
      }
      const timeField = pattern.attributes.timeFieldName;
      const filter: unknown[] = timeField && (bounds.gte || bounds.lte) ? [{ range: { [timeField]: { ...bounds, format: "strict_date_optional_time||epoch_millis" } } }] : [];
      const mustNot: unknown[] = [];
      for (const pill of filters) (pill.negate ? mustNot : filter).push({ match_phrase: { [pill.field]: pill.value } });
      const body: Record<string, unknown> = { size: PAGE_SIZE, track_total_hits: true, query: { bool: { must: [query], filter, must_not: mustNot } } };
      // Newest first, then index order: the sort values of the last hit shown are where the next
      // page starts (search_after), however deep.
      const sort: unknown[] = timeField ? [{ [timeField]: { order: "desc", unmapped_type: "boolean" } }] : [];
      sort.push({ _doc: "desc" });
      body["sort"] = sort;
      if (timeField) {
        body["aggs"] = { histogram: { auto_date_histogram: { field: timeField, buckets: HISTOGRAM_BUCKETS } } };
      }
      status.textContent = "searching…";
      status.className = "response-status";
      try {
        const path = `${encodeURIComponent(pattern.attributes.title)}/_search?allow_no_indices=true&ignore_unavailable=true`;
        const answer = await searchRequest("POST", path, JSON.stringify(body), controller.signal);
        if (answer.status !== 200) {
          const error = JSON.parse(answer.text) as { error?: { type?: string; reason?: string } };
          status.textContent = `${answer.status}: ${error.error?.type ?? ""} ${error.error?.reason ?? answer.text}`;
          status.className = "response-status failed";
          return;
        }
        const result = JSON.parse(answer.text) as SearchAnswer;
        const total = result.hits.total;
        status.textContent = `${total.value}${total.relation === "gte" ? "+" : ""} hits · ${result.took} ms`;
        status.className = "response-status ok";
        clear(table);
        drawHistogram(result.aggregations?.histogram);
        drawFields(result.hits.hits.map((hit) => hit._source ?? {}));
        const rows = h("tbody");
        // The documents just newer and just older than `anchor` in the whole index pattern, by
        // the same sort: Kibana's "view surrounding documents", without the query or the time
        // range, in a list with the anchor between them.
        const showSurrounding = async (anchor: Hit, into: HTMLElement): Promise<void> => {
          if (!anchor.sort || !timeField) return;
          const side = async (order: "asc" | "desc"): Promise<Hit[]> => {
            const around = {
              size: SURROUNDING, query: { match_all: {} }, search_after: anchor.sort,
              sort: [{ [timeField]: { order, unmapped_type: "boolean" } }, { _doc: order }],
            };
            const answer = await searchRequest("POST", path, JSON.stringify(around), controller.signal);
            if (answer.status !== 200) throw new Error(`${answer.status}: ${answer.text.slice(0, 200)}`);
            return (JSON.parse(answer.text) as SearchAnswer).hits.hits;
          };
          clear(into);
          try {
            const [newer, older] = await Promise.all([side("asc"), side("desc")]);
            const line = (hit: Hit, current: boolean) => h("li", current ? { class: "anchor", "aria-current": "true" } : {},
              h("span", { class: "mono" }, JSON.stringify(hit._source ?? {})));
            into.append(h("ol", { class: "surrounding-list", "aria-label": "Surrounding documents, newest first" },
              ...newer.reverse().map((hit) => line(hit, false)), line(anchor, true), ...older.map((hit) => line(hit, false))));
          } catch (error) {
            if (!isAbort(error)) into.append(h("p", { class: "error", role: "alert" }, `surrounding documents failed: ${errorText(error)}`));
          }
        };
        const appendRows = (hits: Hit[]): void => {
        for (const hit of hits) {
          const time = timeField ? valueAt(hit._source, timeField) : undefined;
          const shownTime = typeof time === "string" || typeof time === "number" ? new Date(time).toLocaleString() : "";
          const summary = JSON.stringify(hit._source ?? {});
          const toggle = h("button", { type: "button", "aria-expanded": "false", "aria-label": `Expand document ${hit._id}` }, "▸");
          const cells = columns.length
            ? columns.map((column) => {
              const value = valueAt(hit._source, column);
              return h("td", { class: "mono" }, value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value));
            })
            : [h("td", { class: "mono" }, summary.length > SUMMARY_CHARS_MAX ? summary.slice(0, SUMMARY_CHARS_MAX) + "…" : summary)];
          const surrounding = h("div", { class: "surrounding" });
          const around = h("button", { type: "button", class: "view-surrounding" }, "View surrounding documents");
          around.hidden = !timeField || !hit.sort;
          around.addEventListener("click", () => {
            around.disabled = true;
            void showSurrounding(hit, surrounding).finally(() => {
              around.disabled = false;
            });
          });
          const detail = h("tr", { class: "doc-detail", hidden: true },
            h("td", { colspan: String(1 + (timeField ? 1 : 0) + cells.length) },
              h("pre", {}, highlightJson(JSON.stringify(hit._source ?? {}, null, 2))), around, surrounding));
          toggle.addEventListener("click", () => {
            detail.hidden = !detail.hidden;
            toggle.textContent = detail.hidden ? "▸" : "▾";
            toggle.setAttribute("aria-expanded", String(!detail.hidden));
          });
          rows.append(
            h("tr", { class: "doc" }, h("td", {}, toggle), timeField ? h("td", { class: "mono" }, shownTime) : null, ...cells),
            detail);
        }
        };
        appendRows(result.hits.hits);
        table.appendChild(h("table", { class: "documents" },
          h("thead", {}, h("tr", {}, h("th", {}, ""), timeField ? h("th", {}, timeField) : null,
            ...(columns.length ? columns : ["_source"]).map((column) => h("th", {}, column)))), rows));
        // More pages: each starts after the last hit shown, with the same query and sort.
        let shown = result.hits.hits.length;
        let last = result.hits.hits[shown - 1]?.sort;
        const more = h("button", { type: "button", class: "load-more" }, "Load more");
        const progress = h("p", { class: "status", role: "status" }, `${shown} of ${total.value}${total.relation === "gte" ? "+" : ""} shown`);
        more.hidden = shown < PAGE_SIZE || shown >= total.value && total.relation !== "gte";
        more.addEventListener("click", () => {
          if (!last) return;
          more.disabled = true;
          const next: Record<string, unknown> = { ...body, track_total_hits: false, search_after: last };
          delete next["aggs"];
          searchRequest("POST", path, JSON.stringify(next), controller.signal).then((answer) => {
            more.disabled = false;
            if (answer.status !== 200) {
              progress.textContent = `the next page failed: ${answer.status}`;
              return;
            }
            const page = JSON.parse(answer.text) as SearchAnswer;
            appendRows(page.hits.hits);
            shown += page.hits.hits.length;
            last = page.hits.hits[page.hits.hits.length - 1]?.sort ?? last;
            progress.textContent = `${shown} of ${total.value}${total.relation === "gte" ? "+" : ""} shown`;
            more.hidden = page.hits.hits.length < PAGE_SIZE;
          }, (error: unknown) => {
            more.disabled = false;
            if (!isAbort(error)) progress.textContent = `the next page failed: ${errorText(error)}`;
          });
        });
        table.append(progress, more);
      } catch (error) {
        if (isAbort(error)) return;
        status.textContent = `search failed: ${errorText(error)}`;
        status.className = "response-status failed";
      } finally {
        if (inFlight === controller) inFlight = null;
      }
    };

    const loadSearches = async () => {
      try {
        const searches = await listSaved<SearchAttributes>("search", signal);
        clear(openSelect);
        openSelect.appendChild(h("option", { value: "" }, "Open a saved search…"));
        for (const saved of searches) openSelect.appendChild(h("option", { value: saved.id }, saved.attributes.title));
        openSelect.onchange = () => {
          const saved = searches.find((candidate) => candidate.id === openSelect.value);
          if (!saved) return;
          const a = saved.attributes;
          const next = new URLSearchParams({ pattern: a.pattern, q: a.query, from: a.from, to: a.to });
          if (a.filters.length) next.set("filters", JSON.stringify(a.filters));
          // A new history entry with the saved state: the view mounts again from it.
          location.hash = `#/discover?${next.toString()}`;
        };
      } catch (error) {
        if (!isAbort(error)) savedStatus.textContent = errorText(error);
      }
    };
    saveSearchButton.addEventListener("click", async () => {
      const title = searchName.value.trim();
      const pattern = selected();
      if (!title || !pattern) {
        savedStatus.textContent = "name the search and pick an index pattern first";
        return;
      }
      const here = new URLSearchParams(location.hash.split("?")[1] ?? "");
      try {
        await saveObject<SearchAttributes>("search", idFromTitle(title), {
          title, pattern: pattern.id, query: queryInput.value, filters,
          from: here.get("from") ?? "now-15m", to: here.get("to") ?? "now",
        }, signal);
        savedStatus.textContent = `saved as ${title}`;
        void loadSearches();
      } catch (error) {
        if (!isAbort(error)) savedStatus.textContent = `not saved: ${errorText(error)}`;
      }
    });

    const loadPatterns = async (choose?: string) => {
      try {
        patterns = await listSaved<IndexPatternAttributes>("index-pattern", signal);
      } catch (error) {
        if (!isAbort(error)) status.textContent = errorText(error);
        return;
      }
      clear(patternSelect);
      for (const pattern of patterns) {
        patternSelect.appendChild(h("option", { value: pattern.id }, pattern.attributes.title));
      }
      const wanted = choose ?? params.get("pattern");
      if (wanted && patterns.some((pattern) => pattern.id === wanted)) patternSelect.value = wanted;
      clear(formSlot);
      formSlot.appendChild(patternForm((saved) => void loadPatterns(saved.id), signal));
      if (patterns.length > 0) void search();
      else status.textContent = "Create an index pattern to start.";
    };

    rangeSelect.addEventListener("change", () => {
      const absolute = rangeSelect.value === "absolute";
      fromInput.hidden = toInput.hidden = !absolute;
      if (!absolute) void search();
    });
    patternSelect.addEventListener("change", () => void search());
    searchButton.addEventListener("click", () => void search());
    // Completion of field names in the query bar, from the pattern's _field_caps.
    const completions = h("ul", { class: "completions query-completions", id: "query-completions", role: "listbox", hidden: true });
    queryInput.setAttribute("aria-controls", "query-completions");
    queryInput.setAttribute("aria-autocomplete", "list");
    const fieldNames = new Map<string, string[]>();
    let offered: string[] = [];
    let offeredStart = 0;
    let chosen = 0;
    const namesOf = async (pattern: string): Promise<string[]> => {
      const known = fieldNames.get(pattern);
      if (known) return known;
      const caps = await searchRequest("GET", `${encodeURIComponent(pattern)}/_field_caps?fields=*&allow_no_indices=true`, null, signal);
      const names = caps.status === 200
        ? Object.keys((JSON.parse(caps.text) as { fields?: Record<string, unknown> }).fields ?? {}).filter((name) => !name.startsWith("_")).sort()
        : [];
      fieldNames.set(pattern, names);
      return names;
    };
    const closeCompletions = () => {
      completions.hidden = true;
      offered = [];
    };
    const acceptCompletion = (index: number) => {
      const name = offered[index];
      if (name === undefined) return;
      queryInput.setRangeText(`${name}:`, offeredStart, queryInput.selectionStart ?? offeredStart, "end");
      closeCompletions();
    };
    const offerCompletions = async () => {
      const pattern = selected();
      const caret = queryInput.selectionStart ?? queryInput.value.length;
      const word = /[A-Za-z0-9_.@-]*$/.exec(queryInput.value.slice(0, caret))?.[0] ?? "";
      if (!pattern || word === "" || queryInput.value.trim().startsWith("{")) {
        closeCompletions();
        return;
      }
      try {
        const names = await namesOf(pattern.attributes.title);
        offered = names.filter((name) => name.startsWith(word) && name !== word).slice(0, QUERY_COMPLETIONS_MAX);
      } catch {
        offered = [];
      }
      offeredStart = caret - word.length;
      chosen = 0;
      clear(completions);
      offered.forEach((name, index) => {
        const item = h("li", { role: "option", "aria-selected": String(index === chosen) }, name);
        item.addEventListener("mousedown", (event) => {
          event.preventDefault();
          acceptCompletion(index);
        });
        completions.appendChild(item);
      });
      completions.hidden = offered.length === 0;
    };
    queryInput.addEventListener("input", () => void offerCompletions());
    queryInput.addEventListener("blur", closeCompletions);
    queryInput.addEventListener("keydown", (event) => {
      if (!completions.hidden && offered.length > 0) {
        if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          event.preventDefault();
          chosen = (chosen + (event.key === "ArrowDown" ? 1 : offered.length - 1)) % offered.length;
          completions.querySelectorAll("li").forEach((item, index) => item.setAttribute("aria-selected", String(index === chosen)));
          return;
        }
        if (event.key === "Tab") {
          event.preventDefault();
          acceptCompletion(chosen);
          return;
        }
        if (event.key === "Escape") {
          closeCompletions();
          return;
        }
      }
      if (event.key === "Enter") {
        closeCompletions();
        void search();
      }
    });
    signal.addEventListener("abort", () => inFlight?.abort());

    container.append(
      h("div", { class: "toolbar" }, patternSelect, h("div", { class: "query-wrap" }, queryInput, completions), rangeSelect, fromInput, toInput, searchButton),
      h("div", { class: "toolbar" }, openSelect, searchName, saveSearchButton, savedStatus),
      pills, status, chart,
      h("div", { class: "discover-body" }, fieldList, table),
      formSlot,
    );
    void loadPatterns();
    void loadSearches();
  },
};
