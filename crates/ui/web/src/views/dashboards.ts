// Dashboards: saved visualizations and saved searches on a 12-column CSS grid, moved and resized
// with the pointer (drag the title bar, drag the corner) or the keyboard (arrow keys on a panel's
// move and resize buttons); one query bar, filter pills and time range for every panel, an
// auto-refresh interval and a full-screen mode. The query state, refresh interval and full screen
// are in the URL; Save keeps the panels, their places and that state as a `dashboard` saved object.

import { isAbort, searchRequest } from "../api";
import { clear, errorText, h } from "../dom";
import { type Filter, type QueryState, boolQuery, parseFilters, queryBar, stateFromParams, stateToParams } from "../querystate";
import { href, navigate, updateParams } from "../router";
import { type IndexPatternAttributes, type SavedObject, idFromTitle, listSaved, saveObject } from "../saved";
import { type VisState, VisRunner, normalizeVis } from "../vis";
import type { View } from "../view";
import { applyClick, field } from "./visualize";
import { signedFetch } from "../auth";

/** Columns of the grid; a panel's x and w are in these. */
const GRID_COLUMNS = 12;
/** Height of one grid row in pixels (keep in step with `.dashboard-grid` in app.css). */
const ROW_HEIGHT_PX = 80;
/** Gap between grid cells in pixels (as in app.css). */
const GRID_GAP_PX = 8;
/** Tallest panel in rows. */
const PANEL_ROWS_MAX = 24;
/** Panels on one dashboard at most; "Add panel" says so beyond it. */
const PANELS_MAX = 50;
/** The lowest row a panel can be at: room for every panel stacked, so pushing never clamps. */
const ROWS_MAX = PANELS_MAX * PANEL_ROWS_MAX;
/** A new panel's size: half the width, four rows. */
const NEW_PANEL_W = 6;
const NEW_PANEL_H = 4;
/** Auto-refresh intervals offered, in seconds (0 is off). */
const REFRESH_CHOICES_S = [0, 5, 10, 30, 60, 300];
/** Newest documents a saved search's panel lists. */
const SEARCH_PANEL_ROWS = 10;
/** Characters of a document's summary in a saved search's panel. */
const SUMMARY_CHARS_MAX = 160;

interface Panel {
  /** Unique within the dashboard. */
  id: string;
  kind: "visualization" | "search";
  /** The saved object's id. */
  ref: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

interface DashboardAttributes {
  title: string;
  panels: Panel[];
  query: string;
  filters: Filter[];
  from: string;
  to: string;
  refresh: number;
}

interface SearchAttributes {
  title: string;
  pattern: string;
  query: string;
  filters: Filter[];
}

function clampInt(value: unknown, min: number, max: number, fallback: number): number {
  return typeof value === "number" && Number.isInteger(value) ? Math.min(max, Math.max(min, value)) : fallback;
}

/** Any JSON as well-formed panels: unknown kinds dropped, places clamped to the grid. */
export function normalizePanels(raw: unknown): Panel[] {
  if (!Array.isArray(raw)) return [];
  const panels: Panel[] = [];
  for (const item of raw.slice(0, PANELS_MAX)) {
    if (typeof item !== "object" || item === null) continue;
    const p = item as Record<string, unknown>;
    if ((p["kind"] !== "visualization" && p["kind"] !== "search") || typeof p["ref"] !== "string") continue;
    const w = clampInt(p["w"], 1, GRID_COLUMNS, NEW_PANEL_W);
    panels.push({
      id: typeof p["id"] === "string" ? p["id"] : `p${panels.length + 1}`,
      kind: p["kind"],
      ref: p["ref"],
      w,
      h: clampInt(p["h"], 1, PANEL_ROWS_MAX, NEW_PANEL_H),
      x: clampInt(p["x"], 0, GRID_COLUMNS - w, 0),
      y: clampInt(p["y"], 0, ROWS_MAX, 0),
    });
  }
  return panels;
}

function overlaps(a: Panel, b: Panel): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/**
 * Makes room for `moved` where it now is: every panel it overlaps goes down to just below it, and
 * so on for the panels those then overlap, top to bottom, so that no two panels share a cell.
 * Panels that overlap nothing keep their places (nothing floats up into a gap). Returns the
 * panels that moved down.
 */
function pushDown(panels: Panel[], moved: Panel): Panel[] {
  const settled = [moved];
  const pushed: Panel[] = [];
  const others = panels.filter((p) => p !== moved).sort((a, b) => a.y - b.y || a.x - b.x);
  for (const panel of others) {
    const from = panel.y;
    for (let hit = settled.find((s) => overlaps(s, panel)); hit; hit = settled.find((s) => overlaps(s, panel))) {
      panel.y = hit.y + hit.h;
    }
    if (panel.y !== from) pushed.push(panel);
    settled.push(panel);
  }
  return pushed;
}

function place(element: HTMLElement, panel: Panel): void {
  // Through the CSSOM: the CSP forbids style attributes, not this.
  element.style.gridColumn = `${panel.x + 1} / span ${panel.w}`;
  element.style.gridRow = `${panel.y + 1} / span ${panel.h}`;
}

function describe(panel: Panel): string {
  return `column ${panel.x + 1}, row ${panel.y + 1}, ${panel.w} wide, ${panel.h} high`;
}

function listView(container: HTMLElement, signal: AbortSignal): void {
  const name = h("input", { type: "text", placeholder: "name" });
  const create = h("button", { type: "button", class: "primary" }, "Create dashboard");
  const status = h("p", { class: "response-status", role: "status" });
  const list = h("ul", { class: "saved-list", "aria-label": "Saved dashboards" });
  create.addEventListener("click", async () => {
    const title = name.value.trim();
    if (!title) {
      status.textContent = "name the dashboard first";
      return;
    }
    try {
      const saved = await saveObject<DashboardAttributes>("dashboard", idFromTitle(title),
        { title, panels: [], query: "", filters: [], from: "now-15m", to: "now", refresh: 0 }, signal);
      navigate("dashboards", { id: saved.id });
    } catch (error) {
      if (!isAbort(error)) status.textContent = `not created: ${errorText(error)}`;
    }
  });
  name.addEventListener("keydown", (event) => {
    if (event.key === "Enter") create.click();
  });
  container.append(
    h("div", { class: "toolbar" }, field("New dashboard", name), create),
    status,
    h("h2", { class: "section-title" }, "Saved dashboards"),
    list);
  listSaved<DashboardAttributes>("dashboard", signal).then((saved) => {
    for (const object of saved) list.appendChild(h("li", {}, h("a", { href: href("dashboards", { id: object.id }) }, object.attributes.title || object.id)));
    if (saved.length === 0) list.appendChild(h("li", { class: "placeholder" }, "No saved dashboards yet."));
  }).catch((error: unknown) => {
    if (!isAbort(error)) status.textContent = errorText(error);
  });
}

/** What a panel shows and how it refreshes. */
interface Mounted {
  panel: Panel;
  element: HTMLElement;
  refresh(state: QueryState): void;
  dispose(): void;
}

export const dashboardsView: View = {
  title: "Dashboards",
  mount(container, params, signal) {
    const id = params.get("id");
    if (!id) {
      listView(container, signal);
      return;
    }
    let state: QueryState = stateFromParams(params);
    let title = id;
    let panels: Panel[] = [];
    let refreshS = Number(params.get("refresh") ?? "0");
    let timer: number | undefined;
    const mounted = new Map<string, Mounted>();
    let patterns: Array<SavedObject<IndexPatternAttributes>> = [];
    let visualizations: Array<SavedObject<VisState>> = [];
    let searches: Array<SavedObject<SearchAttributes>> = [];

    const heading = h("h2", { class: "section-title dashboard-title" });
    const grid = h("div", { class: "dashboard-grid", role: "list", "aria-label": "Panels" });
    const announcer = h("p", { class: "visually-hidden", role: "status", "aria-live": "polite" });
    const status = h("span", { class: "hint", role: "status" });
    const refreshSelect = h("select", { "aria-label": "Auto-refresh" },
      ...REFRESH_CHOICES_S.map((s) => h("option", { value: String(s) }, s === 0 ? "Auto-refresh off" : `Every ${s < 60 ? `${s} s` : `${s / 60} min`}`)));
    const fullButton = h("button", { type: "button", "aria-pressed": "false", class: "full-toggle" }, "Full screen");
    const addSelect = h("select", { "aria-label": "Saved visualization or search to add" });
    const addButton = h("button", { type: "button" }, "Add panel");
    const saveButton = h("button", { type: "button", class: "primary" }, "Save dashboard");
    const lastRefresh = h("span", { class: "hint last-refresh", "aria-live": "off" });

    const refreshAll = () => {
      for (const panel of mounted.values()) panel.refresh(state);
      lastRefresh.textContent = `refreshed ${new Date().toLocaleTimeString()}`;
    };
    const keepUrl = () => updateParams({ ...stateToParams(state), refresh: refreshS ? String(refreshS) : null, full: document.body.classList.contains("fullscreen") ? "1" : null });
    const setRefresh = (seconds: number) => {
      refreshS = REFRESH_CHOICES_S.includes(seconds) ? seconds : 0;
      refreshSelect.value = String(refreshS);
      window.clearInterval(timer);
      if (refreshS > 0) timer = window.setInterval(refreshAll, refreshS * 1000);
    };
    const bar = queryBar(state, (next) => {
      state = next;
      keepUrl();
      refreshAll();
    }, [refreshSelect]);
    const onClick = (click: Parameters<typeof applyClick>[1]) => {
      state = applyClick(state, click);
      bar.show(state);
      keepUrl();
      refreshAll();
    };

    const setFull = (full: boolean) => {
      document.body.classList.toggle("fullscreen", full);
      fullButton.setAttribute("aria-pressed", String(full));
      fullButton.textContent = full ? "Exit full screen" : "Full screen";
      if (full && !document.fullscreenElement) document.documentElement.requestFullscreen?.().catch(() => undefined);
      if (!full && document.fullscreenElement) void document.exitFullscreen().catch(() => undefined);
      keepUrl();
    };
    fullButton.addEventListener("click", () => setFull(!document.body.classList.contains("fullscreen")));
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape" && document.body.classList.contains("fullscreen")) setFull(false);
    };
    document.addEventListener("keydown", onKey);
    // The browser's own way out of full screen (its Escape) leaves ours too.
    const onFullscreenChange = () => {
      if (!document.fullscreenElement && document.body.classList.contains("fullscreen")) setFull(false);
    };
    document.addEventListener("fullscreenchange", onFullscreenChange);
    signal.addEventListener("abort", () => {
      window.clearInterval(timer);
      document.removeEventListener("keydown", onKey);
      document.removeEventListener("fullscreenchange", onFullscreenChange);
      document.body.classList.remove("fullscreen");
      for (const panel of mounted.values()) panel.dispose();
    }, { once: true });

    const mountVisualization = (panel: Panel, body: HTMLElement, panelStatus: HTMLElement): Omit<Mounted, "panel" | "element"> => {
      const runner = new VisRunner(body, panelStatus, signal);
      return {
        refresh(current) {
          const saved = visualizations.find((v) => v.id === panel.ref);
          if (!saved) {
            clear(body);
            body.appendChild(h("p", { class: "error" }, `the visualization ${panel.ref} does not exist`));
            return;
          }
          const vis = normalizeVis(saved.attributes);
          void runner.run(vis, patterns.find((p) => p.id === vis.pattern), current, onClick);
        },
        dispose: () => runner.dispose(),
      };
    };

    const mountSearch = (panel: Panel, body: HTMLElement, panelStatus: HTMLElement): Omit<Mounted, "panel" | "element"> => {
      let inFlight: AbortController | null = null;
      return {
        refresh(current) {
          inFlight?.abort();
          const saved = searches.find((s) => s.id === panel.ref);
          const pattern = saved && patterns.find((p) => p.id === saved.attributes.pattern);
          if (!saved || !pattern) {
            clear(body);
            body.appendChild(h("p", { class: "error" }, `the saved search ${panel.ref} or its index pattern does not exist`));
            return;
          }
          const controller = new AbortController();
          inFlight = controller;
          const timeField = pattern.attributes.timeFieldName;
          void (async () => {
            try {
              const merged = { ...current, filters: [...current.filters, ...parseFilters(JSON.stringify(saved.attributes.filters ?? []))] };
              const query = boolQuery(merged, timeField, [saved.attributes.query ?? ""]);
              const body_: Record<string, unknown> = { size: SEARCH_PANEL_ROWS, track_total_hits: true, query };
              if (timeField) body_["sort"] = [{ [timeField]: { order: "desc", unmapped_type: "boolean" } }];
              const answer = await searchRequest("POST", `${encodeURIComponent(pattern.attributes.title)}/_search?allow_no_indices=true&ignore_unavailable=true`, JSON.stringify(body_), controller.signal);
              if (answer.status !== 200) throw new Error(`${answer.status}: ${answer.text.slice(0, 200)}`);
              const result = JSON.parse(answer.text) as { hits: { total: { value: number }; hits: Array<{ _id: string; _source?: Record<string, unknown> }> } };
              clear(body);
              panelStatus.textContent = `${result.hits.total.value} hits`;
              const rows = result.hits.hits.map((hit) => {
                const time = timeField ? hit._source?.[timeField] : undefined;
                const summary = JSON.stringify(hit._source ?? {});
                return h("tr", {}, timeField ? h("td", { class: "mono" }, typeof time === "string" || typeof time === "number" ? new Date(time).toLocaleString() : "") : null,
                  h("td", { class: "mono" }, summary.length > SUMMARY_CHARS_MAX ? summary.slice(0, SUMMARY_CHARS_MAX) + "…" : summary));
              });
              body.appendChild(h("table", { class: "search-panel" },
                h("thead", {}, h("tr", {}, timeField ? h("th", { scope: "col" }, timeField) : null, h("th", { scope: "col" }, "_source"))),
                h("tbody", {}, ...rows)));
            } catch (error) {
              if (isAbort(error)) return;
              panelStatus.textContent = `failed: ${errorText(error)}`;
            } finally {
              if (inFlight === controller) inFlight = null;
            }
          })();
        },
        dispose: () => inFlight?.abort(),
      };
    };

    const panelTitle = (panel: Panel): string => panel.kind === "visualization"
      ? normalizeVis(visualizations.find((v) => v.id === panel.ref)?.attributes).title || panel.ref
      : searches.find((s) => s.id === panel.ref)?.attributes.title ?? panel.ref;

    /** Places every panel after `moved` changed, pushing the ones it now covers down. */
    const relayout = (moved: Panel): Panel[] => {
      const pushed = pushDown(panels, moved);
      for (const entry of mounted.values()) place(entry.element, entry.panel);
      return pushed;
    };
    const announce = (moved: Panel, pushed: Panel[]) => {
      const down = pushed.length ? `; moved down: ${pushed.map(panelTitle).join(", ")}` : "";
      announcer.textContent = `${panelTitle(moved)}: ${describe(moved)}${down}`;
    };

    /** Pointer drag of a panel's place (`move`) or size (`resize`), in grid cells. */
    const dragging = (handle: HTMLElement, panel: Panel, element: HTMLElement, mode: "move" | "resize") => {
      handle.addEventListener("pointerdown", (event) => {
        if (event.button !== 0) return;
        // The title bar's link and buttons keep their clicks; the rest of it is the grip.
        if (mode === "move" && event.target instanceof Element && event.target.closest("a, button")) return;
        event.preventDefault();
        handle.setPointerCapture(event.pointerId);
        const start = { x: event.clientX, y: event.clientY, panel: { ...panel } };
        // Each step is laid out from where the panels were when the drag began, so a panel
        // dragged across others pushes only those it ends up over.
        const rowsAtStart = new Map(panels.map((p) => [p, p.y]));
        let pushed: Panel[] = [];
        const cellW = (grid.clientWidth + GRID_GAP_PX) / GRID_COLUMNS;
        const cellH = ROW_HEIGHT_PX + GRID_GAP_PX;
        element.classList.add("dragging");
        const move = (moveEvent: PointerEvent) => {
          const dx = Math.round((moveEvent.clientX - start.x) / cellW);
          const dy = Math.round((moveEvent.clientY - start.y) / cellH);
          if (mode === "move") {
            panel.x = Math.min(GRID_COLUMNS - panel.w, Math.max(0, start.panel.x + dx));
            panel.y = Math.min(ROWS_MAX, Math.max(0, start.panel.y + dy));
          } else {
            panel.w = Math.min(GRID_COLUMNS - panel.x, Math.max(1, start.panel.w + dx));
            panel.h = Math.min(PANEL_ROWS_MAX, Math.max(1, start.panel.h + dy));
          }
          for (const [p, y] of rowsAtStart) if (p !== panel) p.y = y;
          pushed = relayout(panel);
        };
        const up = () => {
          element.classList.remove("dragging");
          handle.removeEventListener("pointermove", move);
          handle.removeEventListener("pointerup", up);
          handle.removeEventListener("pointercancel", up);
          announce(panel, pushed);
        };
        handle.addEventListener("pointermove", move);
        handle.addEventListener("pointerup", up);
        handle.addEventListener("pointercancel", up);
      });
    };

    /** Arrow keys on a panel's move or resize button. */
    const arrows = (button: HTMLElement, panel: Panel, mode: "move" | "resize") => {
      button.addEventListener("keydown", (event) => {
        const delta = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[event.key];
        if (!delta) return;
        event.preventDefault();
        const [dx = 0, dy = 0] = delta;
        if (mode === "move") {
          panel.x = Math.min(GRID_COLUMNS - panel.w, Math.max(0, panel.x + dx));
          panel.y = Math.min(ROWS_MAX, Math.max(0, panel.y + dy));
        } else {
          panel.w = Math.min(GRID_COLUMNS - panel.x, Math.max(1, panel.w + dx));
          panel.h = Math.min(PANEL_ROWS_MAX, Math.max(1, panel.h + dy));
        }
        announce(panel, relayout(panel));
      });
    };

    const mountPanel = (panel: Panel) => {
      const name = panelTitle(panel);
      const panelStatus = h("span", { class: "hint panel-status", role: "status" });
      const body = h("div", { class: "panel-body" });
      const moveButton = h("button", { type: "button", class: "panel-move", "aria-label": `Move ${name} (arrow keys)`, title: "Drag or use the arrow keys to move" }, "✥");
      const resizeButton = h("button", { type: "button", class: "panel-resize", "aria-label": `Resize ${name} (arrow keys)`, title: "Drag or use the arrow keys to resize" }, "⇲");
      const removeButton = h("button", { type: "button", class: "panel-remove", "aria-label": `Remove ${name}` }, "×");
      const link = panel.kind === "visualization"
        ? h("a", { href: href("visualize", { id: panel.ref }) }, name)
        : h("a", { href: href("discover", { pattern: searches.find((s) => s.id === panel.ref)?.attributes.pattern ?? "", q: searches.find((s) => s.id === panel.ref)?.attributes.query ?? "" }) }, name);
      const header = h("div", { class: "panel-header" }, h("h3", { class: "panel-title" }, link), panelStatus, moveButton, removeButton);
      const element = h("div", { class: "panel", role: "listitem", "aria-label": name, "data-panel": panel.id }, header, body, resizeButton);
      place(element, panel);
      dragging(header, panel, element, "move");
      dragging(resizeButton, panel, element, "resize");
      arrows(moveButton, panel, "move");
      arrows(resizeButton, panel, "resize");
      removeButton.addEventListener("click", () => {
        panels = panels.filter((p) => p !== panel);
        mounted.get(panel.id)?.dispose();
        mounted.delete(panel.id);
        element.remove();
        announcer.textContent = `${name} removed`;
        addButton.focus();
      });
      const behaviour = panel.kind === "visualization" ? mountVisualization(panel, body, panelStatus) : mountSearch(panel, body, panelStatus);
      const entry: Mounted = { panel, element, ...behaviour };
      mounted.set(panel.id, entry);
      grid.appendChild(element);
      entry.refresh(state);
    };

    addButton.addEventListener("click", () => {
      const [kind, ref] = addSelect.value.split(":", 2) as [string, string | undefined];
      if (!ref || (kind !== "visualization" && kind !== "search")) {
        status.textContent = "choose a visualization or saved search to add";
        return;
      }
      if (panels.length >= PANELS_MAX) {
        status.textContent = `a dashboard holds at most ${PANELS_MAX} panels`;
        return;
      }
      // Below everything, in the first half or the second, whichever has room higher up.
      const bottom = (from: number, to: number) => Math.max(0, ...panels.filter((p) => p.x < to && p.x + p.w > from).map((p) => p.y + p.h));
      const left = bottom(0, NEW_PANEL_W);
      const right = bottom(NEW_PANEL_W, GRID_COLUMNS);
      let next = 1;
      while (panels.some((p) => p.id === `p${next}`)) next += 1;
      const panel: Panel = { id: `p${next}`, kind, ref, x: right < left ? NEW_PANEL_W : 0, y: Math.min(left, right), w: NEW_PANEL_W, h: NEW_PANEL_H };
      panels.push(panel);
      mountPanel(panel);
      status.textContent = `added ${panelTitle(panel)}`;
    });

    saveButton.addEventListener("click", async () => {
      try {
        await saveObject<DashboardAttributes>("dashboard", id, {
          title, panels, query: state.query, filters: state.filters, from: state.range.from || "all", to: state.range.to, refresh: refreshS,
        }, signal);
        status.textContent = `saved ${title}`;
      } catch (error) {
        if (!isAbort(error)) status.textContent = `not saved: ${errorText(error)}`;
      }
    });
    refreshSelect.addEventListener("change", () => {
      setRefresh(Number(refreshSelect.value));
      keepUrl();
    });

    container.append(
      heading,
      h("div", { class: "dashboard-controls" }, bar.controls, bar.pills,
        h("div", { class: "toolbar edit-toolbar" }, addSelect, addButton, saveButton, fullButton, status, lastRefresh)),
      announcer,
      grid,
    );

    const start = async () => {
      try {
        const answer = await signedFetch(`/api/saved_objects/dashboard/${encodeURIComponent(id)}`, { signal });
        if (!answer.ok) throw new Error(`the dashboard ${id} was not found (${answer.status})`);
        const saved = ((await answer.json()) as SavedObject<Partial<DashboardAttributes>>).attributes;
        [patterns, visualizations, searches] = await Promise.all([
          listSaved<IndexPatternAttributes>("index-pattern", signal),
          listSaved<VisState>("visualization", signal),
          listSaved<SearchAttributes>("search", signal),
        ]);
        title = typeof saved.title === "string" ? saved.title : id;
        panels = normalizePanels(saved.panels);
        // The URL's state wins over the saved one: a shared link shows what its sender saw.
        if (!params.has("from") && !params.has("q") && !params.has("filters")) {
          const savedParams = new URLSearchParams();
          savedParams.set("q", typeof saved.query === "string" ? saved.query : "");
          savedParams.set("filters", JSON.stringify(saved.filters ?? []));
          savedParams.set("from", typeof saved.from === "string" ? saved.from : "now-15m");
          savedParams.set("to", typeof saved.to === "string" ? saved.to : "now");
          state = stateFromParams(savedParams);
          bar.show(state);
        }
        if (!params.has("refresh") && typeof saved.refresh === "number") refreshS = saved.refresh;
      } catch (error) {
        if (!isAbort(error)) {
          status.textContent = errorText(error);
          status.classList.add("failed");
        }
        return;
      }
      heading.textContent = title;
      document.title = `${title} · Dashboards · Sluice`;
      clear(addSelect);
      addSelect.appendChild(h("option", { value: "" }, "Choose a panel to add…"));
      addSelect.appendChild(h("optgroup", { label: "Visualizations" },
        ...visualizations.map((v) => h("option", { value: `visualization:${v.id}` }, normalizeVis(v.attributes).title || v.id))));
      addSelect.appendChild(h("optgroup", { label: "Saved searches" },
        ...searches.map((s) => h("option", { value: `search:${s.id}` }, s.attributes.title || s.id))));
      for (const panel of panels) mountPanel(panel);
      if (panels.length === 0) status.textContent = "Add a saved visualization or search.";
      setRefresh(refreshS);
      if (params.get("full") === "1") setFull(true);
      keepUrl();
      lastRefresh.textContent = `refreshed ${new Date().toLocaleTimeString()}`;
    };
    void start();
  },
};
