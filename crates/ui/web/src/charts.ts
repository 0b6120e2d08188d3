// Charts with ECharts: only the chart types and components Visualize uses are imported from
// `echarts/core`, so the bundle carries nothing else. Colours of text and axes come from the
// theme's custom properties; tooltips are built as DOM (the CSP refuses inline style markup, which
// ECharts' default tooltip HTML carries); each chart resizes with its container.

import { BarChart, HeatmapChart, LineChart, PieChart } from "echarts/charts";
import { AriaComponent, GridComponent, LegendComponent, TooltipComponent, VisualMapComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import { h } from "./dom";
import { type Row, type VisResult, type VisState, formatKey, formatNumber, metricLabel } from "./vis";

echarts.use([BarChart, HeatmapChart, LineChart, PieChart, AriaComponent, GridComponent, LegendComponent, TooltipComponent, VisualMapComponent, CanvasRenderer]);

export interface ChartHandle {
  /** Draws a new answer of the same visualization in place (an auto-refresh), keeping the chart. */
  update(result: VisResult): void;
  dispose(): void;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

interface Point {
  seriesName?: string;
  name?: string;
  value?: unknown;
  marker?: unknown;
  seriesIndex?: number;
  dataIndex?: number;
}

/** A tooltip's lines as DOM: a heading and one "name: value" per point. */
function tooltip(heading: string, lines: Array<[string, string]>): HTMLElement {
  return h("div", { class: "chart-tooltip" }, h("strong", {}, heading),
    ...lines.map(([name, value]) => h("div", {}, `${name}: `, h("b", {}, value))));
}

/**
 * Draws the rows into `container` (which must have a size). `onRow` receives the row behind a
 * clicked point, bar or slice.
 */
export function drawChart(container: HTMLElement, vis: VisState, result: VisResult, title: string, onRow: (row: Row) => void): ChartHandle {
  const chart = echarts.init(container, undefined, { renderer: "canvas" });
  let drawn = chartOption(vis, result, title);
  chart.setOption(drawn.option);
  chart.on("click", (params) => {
    const point = params as unknown as Point;
    const row = drawn.behind[vis.type === "heatmap" || vis.type === "pie" ? 0 : point.seriesIndex ?? -1]?.[point.dataIndex ?? -1];
    if (row) onRow(row);
  });
  const observer = new ResizeObserver(() => chart.resize());
  observer.observe(container);
  return {
    update(next) {
      drawn = chartOption(vis, next, title);
      // Replaced, not merged: series that are gone must go.
      chart.setOption(drawn.option, { notMerge: true });
    },
    dispose() {
      observer.disconnect();
      chart.dispose();
    },
  };
}

/** The ECharts option of an answer, and the rows behind each drawn point. */
function chartOption(vis: VisState, result: VisResult, title: string): { option: Record<string, unknown>; behind: Array<Array<Row | undefined>> } {
  const fg = cssVar("--fg");
  const muted = cssVar("--muted");
  const border = cssVar("--border");
  const bg = cssVar("--panel");
  const time = vis.bucket === "date_histogram";
  const seriesNames = [...new Set(result.rows.map((row) => row.series ?? metricLabel(vis)))];
  const keys = [...new Set(result.rows.map((row) => row.key))];
  if (time) keys.sort((a, b) => Number(a) - Number(b));
  if (!time && vis.sort.startsWith("key")) keys.sort((a, b) => (String(a) < String(b) ? -1 : 1) * (vis.sort === "key-desc" ? -1 : 1));
  /** The rows behind each drawn point: `[seriesIndex][dataIndex]`. */
  const behind: Array<Array<Row | undefined>> = [];
  const common = {
    aria: { enabled: true, label: { description: `${title}: ${metricLabel(vis)} by ${vis.bucketField}. The numbers are in the table that follows.` } },
    animation: false,
    textStyle: { color: fg },
    tooltip: { confine: true, backgroundColor: bg, borderColor: border, textStyle: { color: fg } },
  };
  let option: Record<string, unknown>;
  if (vis.type === "pie") {
    const rows = result.rows.filter((row) => row.value !== null);
    behind.push(rows);
    option = {
      ...common,
      tooltip: { ...common.tooltip, trigger: "item", formatter: (p: Point) => tooltip(String(p.name), [[metricLabel(vis), formatNumber(Number(p.value))]]) },
      legend: { type: "scroll", bottom: 0, textStyle: { color: fg } },
      series: [{
        type: "pie",
        radius: vis.donut ? ["40%", "70%"] : [0, "70%"],
        label: { color: fg },
        data: rows.map((row) => ({ name: formatKey(vis, row.key), value: row.value })),
      }],
    };
  } else if (vis.type === "heatmap") {
    const ys = [...new Set(result.rows.map((row) => row.series ?? ""))];
    const xs = keys;
    const values = result.rows.map((row) => row.value ?? 0);
    behind.push(result.rows);
    option = {
      ...common,
      tooltip: { ...common.tooltip, trigger: "item", formatter: (p: Point) => {
        const row = result.rows[p.dataIndex ?? -1];
        return tooltip(row ? `${formatKey(vis, row.key)} · ${row.series ?? ""}` : "", [[metricLabel(vis), formatNumber(row?.value ?? null)]]);
      } },
      grid: { left: 8, right: 8, top: 8, bottom: 80, containLabel: true },
      xAxis: { type: "category", data: xs.map((key) => formatKey(vis, key)), axisLabel: { color: muted }, axisLine: { lineStyle: { color: border } } },
      yAxis: { type: "category", data: ys, axisLabel: { color: muted }, axisLine: { lineStyle: { color: border } } },
      visualMap: { min: Math.min(0, ...values), max: Math.max(1, ...values), calculable: true, orient: "horizontal", left: "center", bottom: 0, textStyle: { color: fg } },
      series: [{
        type: "heatmap",
        data: result.rows.map((row) => [xs.indexOf(row.key), ys.indexOf(row.series ?? ""), row.value ?? 0]),
        label: { show: xs.length * ys.length <= 60, color: fg, formatter: (p: Point) => formatNumber((p.value as number[])[2] ?? null) },
      }],
    };
  } else {
    const horizontal = vis.type === "hbar";
    const kind = vis.type === "line" || vis.type === "area" ? "line" : "bar";
    const series = seriesNames.map((name) => {
      const rows = result.rows.filter((row) => (row.series ?? metricLabel(vis)) === name);
      const byKey = new Map(rows.map((row) => [row.key, row]));
      if (time) {
        const sorted = [...rows].sort((a, b) => Number(a.key) - Number(b.key));
        behind.push(sorted);
        return { name, type: kind, showSymbol: true, areaStyle: vis.type === "area" ? {} : undefined, stack: vis.type === "area" ? "total" : undefined,
          data: sorted.map((row) => [row.key, row.value]) };
      }
      behind.push(keys.map((key) => byKey.get(key)));
      return { name, type: kind, areaStyle: vis.type === "area" ? {} : undefined, data: keys.map((key) => byKey.get(key)?.value ?? null) };
    });
    const categoryAxis = time
      ? { type: "time", axisLabel: { color: muted }, axisLine: { lineStyle: { color: border } } }
      : { type: "category", data: keys.map((key) => formatKey(vis, key)), axisLabel: { color: muted }, axisLine: { lineStyle: { color: border } } };
    const valueAxis = { type: "value", name: metricLabel(vis), nameTextStyle: { color: muted }, axisLabel: { color: muted }, splitLine: { lineStyle: { color: border } } };
    option = {
      ...common,
      tooltip: { ...common.tooltip, trigger: "axis", formatter: (points: Point[]) => {
        const first = points[0];
        const heading = time && Array.isArray(first?.value) ? new Date(Number(first.value[0])).toLocaleString() : String(first?.name ?? "");
        return tooltip(heading, points.map((p) => [p.seriesName ?? "", formatNumber(Array.isArray(p.value) ? Number(p.value[1]) : (p.value as number | null))]));
      } },
      legend: { type: "scroll", top: 0, textStyle: { color: fg } },
      grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
      xAxis: horizontal ? valueAxis : categoryAxis,
      yAxis: horizontal ? categoryAxis : valueAxis,
      series,
    };
  }
  return { option, behind };
}
