// Visualize: the list of saved visualizations, and the editor: pick the type, the index pattern,
// the metric (count or an aggregation of a numeric field, with an optional query of its own),
// the bucket (date histogram with an auto or fixed interval, or terms of an aggregatable field),
// the split, sort and size, with a live preview that cancels the request it replaces. The whole
// editor state (`vis`) and the shared query state are in the URL; Save keeps it as a
// `visualization` saved object by name.

import { isAbort } from "../api";
import { clear, errorText, h } from "../dom";
import { type FieldInfo, fieldCaps, isDate, isNumeric } from "../fields";
import { type QueryState, queryBar, stateFromParams, stateToParams, withFilter } from "../querystate";
import { href, updateParams } from "../router";
import { type IndexPatternAttributes, type SavedObject, idFromTitle, listSaved, saveObject } from "../saved";
import {
  type BucketClick, BUCKET_AGGS, INTERVALS, METRIC_AGGS, SORTS, TERMS_SIZE_MAX, VIS_TYPES, VIS_TYPE_LABELS,
  type VisState, VisRunner, defaultVis, normalizeVis,
} from "../vis";
import type { View } from "../view";
import { signedFetch } from "../auth";

/** Quiet time after an edit before the preview runs, so typing does not send a request a key. */
const PREVIEW_DEBOUNCE_MS = 300;

const SORT_LABELS: Record<(typeof SORTS)[number], string> = {
  "metric-desc": "Metric, descending", "metric-asc": "Metric, ascending", "key-asc": "Key, ascending", "key-desc": "Key, descending",
};
const BUCKET_LABELS: Record<(typeof BUCKET_AGGS)[number], string> = { none: "none", date_histogram: "Date histogram", terms: "Terms" };

let nextControlId = 0;

/** A control with its label (`for`), so its accessible name is exactly the label's text. */
export function field(label: string, control: HTMLElement): HTMLElement {
  nextControlId += 1;
  control.id ||= `control-${nextControlId}`;
  return h("div", { class: "field-control" }, h("label", { for: control.id }, label), control);
}

function options(select: HTMLSelectElement, values: Array<[string, string]>, keep: string): void {
  clear(select);
  for (const [value, label] of values) select.appendChild(h("option", { value }, label));
  select.value = values.some(([value]) => value === keep) ? keep : (values[0]?.[0] ?? "");
}

/** Applies a click on a bucket to a query state: its filters as pills, its range as the range. */
export function applyClick(state: QueryState, click: BucketClick): QueryState {
  let filters = state.filters;
  for (const filter of click.filters) filters = withFilter(filters, filter.field, filter.value);
  return { ...state, filters, range: click.range ?? state.range };
}

function listView(container: HTMLElement, signal: AbortSignal): void {
  const list = h("ul", { class: "saved-list", "aria-label": "Saved visualizations" });
  const status = h("p", { class: "response-status", role: "status" });
  container.append(
    h("h2", { class: "section-title" }, "Create a visualization"),
    h("ul", { class: "type-list" }, ...VIS_TYPES.map((type) =>
      h("li", {}, h("a", { href: href("visualize", { vis: JSON.stringify(defaultVis(type)) }), class: "type-link" }, VIS_TYPE_LABELS[type])))),
    h("h2", { class: "section-title" }, "Saved visualizations"),
    status, list);
  listSaved<VisState>("visualization", signal).then((saved) => {
    for (const object of saved) {
      const vis = normalizeVis(object.attributes);
      list.appendChild(h("li", {}, h("a", { href: href("visualize", { id: object.id }) }, vis.title || object.id), h("span", { class: "hint" }, ` ${VIS_TYPE_LABELS[vis.type]}`)));
    }
    if (saved.length === 0) status.textContent = "No saved visualizations yet.";
  }).catch((error: unknown) => {
    if (!isAbort(error)) status.textContent = errorText(error);
  });
}

export const visualizeView: View = {
  title: "Visualize",
  mount(container, params, signal) {
    const id = params.get("id");
    const raw = params.get("vis");
    if (!id && !raw) {
      listView(container, signal);
      return;
    }
    let vis = defaultVis();
    try {
      if (raw) vis = normalizeVis(JSON.parse(raw));
    } catch {
      // A hand-edited URL: start from the defaults.
    }
    let state = stateFromParams(params);
    let patterns: Array<SavedObject<IndexPatternAttributes>> = [];
    let fields: FieldInfo[] = [];
    let fieldsOf = "";
    let timer: number | undefined;

    const preview = h("div", { class: "vis-preview", "aria-label": "Preview", role: "region" });
    const status = h("p", { class: "vis-status", role: "status", "aria-live": "polite" });
    const runner = new VisRunner(preview, status, signal);
    const saveStatus = h("span", { class: "hint", role: "status" });

    const typeSelect = h("select", {});
    options(typeSelect, VIS_TYPES.map((type) => [type, VIS_TYPE_LABELS[type]]), vis.type);
    const titleInput = h("input", { type: "text", placeholder: "name" });
    titleInput.value = vis.title;
    const patternSelect = h("select", {});
    const metricSelect = h("select", {});
    options(metricSelect, METRIC_AGGS.map((agg) => [agg, agg === "cardinality" ? "unique count" : agg]), vis.metric);
    const metricFieldSelect = h("select", {});
    const filterInput = h("input", { type: "text", placeholder: "message:hello" });
    filterInput.value = vis.filter;
    const bucketSelect = h("select", {});
    options(bucketSelect, BUCKET_AGGS.map((agg) => [agg, BUCKET_LABELS[agg]]), vis.bucket);
    const bucketFieldSelect = h("select", {});
    const intervalSelect = h("select", {});
    options(intervalSelect, [["auto", "auto"], ...INTERVALS.map((interval): [string, string] => [interval, interval])], vis.interval);
    const sizeInput = h("input", { type: "number", min: "1", max: String(TERMS_SIZE_MAX) });
    sizeInput.value = String(vis.size);
    const sortSelect = h("select", {});
    options(sortSelect, SORTS.map((sort) => [sort, SORT_LABELS[sort]]), vis.sort);
    const splitSelect = h("select", {});
    const splitSizeInput = h("input", { type: "number", min: "1", max: String(TERMS_SIZE_MAX) });
    splitSizeInput.value = String(vis.splitSize);
    const donutInput = h("input", { type: "checkbox" });
    donutInput.checked = vis.donut;
    const markdownInput = h("textarea", { rows: "8", class: "markdown-input" });
    markdownInput.value = vis.markdown;
    const saveButton = h("button", { type: "button", class: "primary" }, "Save visualization");

    const controls = {
      pattern: field("Index pattern", patternSelect),
      metric: field("Metric", metricSelect),
      metricField: field("Metric field", metricFieldSelect),
      filter: field("Filter (query)", filterInput),
      bucket: field("Bucket", bucketSelect),
      bucketField: field("Bucket field", bucketFieldSelect),
      interval: field("Interval", intervalSelect),
      size: field("Size", sizeInput),
      sort: field("Sort", sortSelect),
      split: field("Split series by", splitSelect),
      splitSize: field("Split size", splitSizeInput),
      donut: field("Donut", donutInput),
      markdown: field("Markdown", markdownInput),
    };

    const selectedPattern = () => patterns.find((pattern) => pattern.id === vis.pattern);

    /** Fills the field menus for the current choices and hides what the type does not use. */
    const refreshControls = () => {
      const numeric = fields.filter(isNumeric);
      options(metricFieldSelect, [["", "choose a field…"], ...numeric.map((f): [string, string] => [f.name, f.name])], vis.metricField);
      if (vis.metric === "cardinality") {
        options(metricFieldSelect, [["", "choose a field…"], ...fields.filter((f) => f.aggregatable).map((f): [string, string] => [f.name, f.name])], vis.metricField);
      }
      const bucketFields = fields.filter((f) => f.aggregatable && (vis.bucket === "date_histogram" ? isDate(f) : vis.bucket === "terms"));
      const timeField = selectedPattern()?.attributes.timeFieldName ?? "";
      options(bucketFieldSelect, [["", "choose a field…"], ...bucketFields.map((f): [string, string] => [f.name, f.name])],
        vis.bucketField || (vis.bucket === "date_histogram" ? timeField : ""));
      options(splitSelect, [["", vis.type === "heatmap" ? "choose a field…" : "no split"], ...fields.filter((f) => f.aggregatable && !isDate(f)).map((f): [string, string] => [f.name, f.name])], vis.split);
      // Until the pattern's fields are known, the menus cannot hold the state's choices: keep them.
      if (fieldsOf !== "") {
        vis.metricField = metricFieldSelect.value;
        vis.bucketField = bucketFieldSelect.value;
        vis.split = splitSelect.value;
      }
      const charted = vis.type !== "metric" && vis.type !== "markdown";
      controls.pattern.hidden = vis.type === "markdown";
      controls.metric.hidden = controls.filter.hidden = vis.type === "markdown";
      controls.metricField.hidden = vis.type === "markdown" || vis.metric === "count";
      controls.bucket.hidden = controls.bucketField.hidden = !charted;
      controls.interval.hidden = !charted || vis.bucket !== "date_histogram";
      controls.size.hidden = controls.sort.hidden = !charted || vis.bucket !== "terms";
      controls.split.hidden = !["line", "area", "bar", "hbar", "table", "heatmap"].includes(vis.type);
      controls.splitSize.hidden = controls.split.hidden || !vis.split;
      controls.donut.hidden = vis.type !== "pie";
      controls.markdown.hidden = vis.type !== "markdown";
    };

    const loadFields = async () => {
      const pattern = selectedPattern();
      if (!pattern || fieldsOf === pattern.attributes.title) return;
      fieldsOf = pattern.attributes.title;
      try {
        fields = await fieldCaps(pattern.attributes.title, signal);
      } catch (error) {
        if (!isAbort(error)) status.textContent = errorText(error);
        fields = [];
      }
    };

    const run = () => {
      window.clearTimeout(timer);
      void runner.run(vis, selectedPattern(), state, (click) => {
        state = applyClick(state, click);
        bar.show(state);
        changed();
      });
    };
    /** Keeps the URL on the state and schedules the preview. */
    const changed = (now = false) => {
      updateParams({ vis: JSON.stringify(vis), ...stateToParams(state) });
      window.clearTimeout(timer);
      if (now) run();
      else timer = window.setTimeout(run, PREVIEW_DEBOUNCE_MS);
    };
    const bar = queryBar(state, (next) => {
      state = next;
      changed(true);
    });

    const read = () => {
      vis = normalizeVis({
        ...vis,
        title: titleInput.value,
        type: typeSelect.value,
        pattern: patternSelect.value,
        metric: metricSelect.value,
        metricField: metricFieldSelect.value,
        filter: filterInput.value,
        bucket: bucketSelect.value,
        bucketField: bucketFieldSelect.value,
        interval: intervalSelect.value,
        size: Number(sizeInput.value),
        sort: sortSelect.value,
        split: splitSelect.value,
        splitSize: Number(splitSizeInput.value),
        donut: donutInput.checked,
        markdown: markdownInput.value,
      });
    };
    const onEdit = async (event: Event) => {
      const target = event.target;
      const before = vis;
      read();
      if (target === typeSelect) {
        // A chart needs a bucket; a metric has none.
        if (vis.type === "metric" || vis.type === "markdown") vis.bucket = "none";
        else if (vis.bucket === "none") vis.bucket = vis.type === "pie" ? "terms" : "date_histogram";
        bucketSelect.value = vis.bucket;
      }
      if (target === bucketSelect && before.bucket !== vis.bucket) vis.bucketField = "";
      if (target === patternSelect) {
        vis.metricField = vis.bucketField = vis.split = "";
        await loadFields();
      }
      refreshControls();
      changed(event.type === "change");
    };
    for (const control of [typeSelect, patternSelect, metricSelect, metricFieldSelect, bucketSelect, bucketFieldSelect, intervalSelect, sortSelect, splitSelect, donutInput]) {
      control.addEventListener("change", (event) => void onEdit(event));
    }
    for (const control of [titleInput, filterInput, sizeInput, splitSizeInput, markdownInput]) {
      control.addEventListener("input", (event) => void onEdit(event));
    }

    saveButton.addEventListener("click", async () => {
      read();
      const title = vis.title.trim();
      if (!title) {
        saveStatus.textContent = "name the visualization first";
        titleInput.focus();
        return;
      }
      try {
        const saved = await saveObject<VisState>("visualization", idFromTitle(title), vis, signal);
        updateParams({ id: saved.id });
        saveStatus.textContent = `saved as ${title}`;
      } catch (error) {
        if (!isAbort(error)) saveStatus.textContent = `not saved: ${errorText(error)}`;
      }
    });

    container.append(
      bar.controls,
      bar.pills,
      h("div", { class: "vis-editor" },
        h("form", { class: "vis-form", "aria-label": "Visualization" },
          field("Type", typeSelect), field("Title", titleInput),
          ...Object.values(controls),
          h("div", { class: "toolbar" }, saveButton, saveStatus)),
        h("section", { class: "vis-pane", "aria-label": "Live preview" }, status, preview)),
    );
    // Enter in a text field must not submit the (action-less) form.
    container.querySelector("form")?.addEventListener("submit", (event) => event.preventDefault());

    const start = async () => {
      try {
        if (id && !raw) {
          const saved = await signedFetch(`/api/saved_objects/visualization/${encodeURIComponent(id)}`, { signal });
          if (!saved.ok) throw new Error(`the visualization ${id} was not found (${saved.status})`);
          vis = normalizeVis(((await saved.json()) as SavedObject<VisState>).attributes);
          titleInput.value = vis.title;
          typeSelect.value = vis.type;
          metricSelect.value = vis.metric;
          filterInput.value = vis.filter;
          bucketSelect.value = vis.bucket;
          intervalSelect.value = vis.interval;
          sizeInput.value = String(vis.size);
          sortSelect.value = vis.sort;
          splitSizeInput.value = String(vis.splitSize);
          donutInput.checked = vis.donut;
          markdownInput.value = vis.markdown;
        }
        patterns = await listSaved<IndexPatternAttributes>("index-pattern", signal);
      } catch (error) {
        if (!isAbort(error)) {
          status.textContent = errorText(error);
          status.className = "vis-status failed";
        }
        return;
      }
      options(patternSelect, [["", "choose an index pattern…"], ...patterns.map((p): [string, string] => [p.id, p.attributes.title])], vis.pattern);
      vis.pattern = patternSelect.value;
      await loadFields();
      refreshControls();
      changed(true);
    };
    refreshControls();
    void start();
  },
};
