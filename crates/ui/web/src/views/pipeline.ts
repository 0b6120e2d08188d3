// Pipeline monitor: the running pipeline as four columns — ledgers and tables, streams, delivery streams
// (with their Lambda processors), destinations (indices and S3 backups) — read from the public
// APIs (QLDB ListLedgers, DynamoDB ListTables, Kinesis ListStreams, Firehose ListDeliveryStreams and
// DescribeDeliveryStream with its SluiceMetrics counters, `_cat/indices`, and `/metrics` for
// the functions that fail) every `refresh`
// seconds, with rates computed between two reads. A stream's records can be peeked.

import * as ion from "ion-js";
import { awsJson, awsRest, isAbort, metricsText, searchRequest } from "../api";
import { clear, errorText, h } from "../dom";
import { updateParams } from "../router";
import type { View } from "../view";

/** Refresh intervals offered, in seconds (0: off). */
const REFRESH_CHOICES_S = [0, 2, 5, 10, 30, 60];
const REFRESH_DEFAULT_S = 5;
/** Records one peek reads (Kinesis's GetRecords Limit). */
const PEEK_RECORDS_MAX = 25;
/** Characters of one record shown before it is cut. */
const RECORD_TEXT_SHOWN_MAX = 2000;

interface DeliveryDescription {
  DeliveryStreamName: string;
  DeliveryStreamStatus: string;
  DeliveryStreamType: string;
  Source?: { KinesisStreamSourceDescription?: { KinesisStreamARN?: string } };
  Destinations?: Array<Record<string, DestinationDescription | string>>;
  FailureDescription?: { Type?: string; Details?: string };
  SluiceMetrics?: Record<string, number>;
}

interface DestinationDescription {
  IndexName?: string;
  BucketARN?: string;
  S3DestinationDescription?: { BucketARN?: string };
  ProcessingConfiguration?: { Processors?: Array<{ Parameters?: Array<{ ParameterName: string; ParameterValue: string }> }> };
}

/** What `/metrics` says of one delivery stream's functions. */
interface FunctionHealth {
  failing: Set<string>;
  /** `function error_code` → invocations that failed after their retries. */
  failures: Map<string, number>;
}

/** Reads the delivery streams' function metrics out of the Prometheus text of `/metrics`. */
export function functionHealth(text: string): Map<string, FunctionHealth> {
  const health = new Map<string, FunctionHealth>();
  const entry = (stream: string) => {
    const existing = health.get(stream);
    if (existing) return existing;
    const created: FunctionHealth = { failing: new Set(), failures: new Map() };
    health.set(stream, created);
    return created;
  };
  for (const line of text.split("\n")) {
    const match = /^(sluice_firehose_processor_failing|sluice_firehose_processing_failures_total)\{([^}]*)\}\s+(\S+)$/.exec(line);
    if (!match) continue;
    const labels = new Map<string, string>();
    for (const label of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels.set(label[1] ?? "", label[2] ?? "");
    const stream = labels.get("delivery_stream");
    const fn = labels.get("function");
    const value = Number(match[3]);
    if (!stream || !fn || !Number.isFinite(value)) continue;
    if (match[1] === "sluice_firehose_processor_failing") {
      if (value > 0) entry(stream).failing.add(fn);
    } else if (value > 0) {
      entry(stream).failures.set(`${fn} ${labels.get("error_code") ?? ""}`, value);
    }
  }
  return health;
}

interface Snapshot {
  at: number;
  health: Map<string, FunctionHealth>;
  ledgers: string[];
  tables: string[];
  streams: string[];
  delivery: DeliveryDescription[];
  indices: Array<{ index: string; "docs.count": string }>;
}

function name(arn: string | undefined): string {
  return arn ? (arn.split("/").pop() ?? arn) : "";
}

function destinationsOf(description: DeliveryDescription): DestinationDescription[] {
  const out: DestinationDescription[] = [];
  for (const destination of description.Destinations ?? []) {
    for (const [key, value] of Object.entries(destination)) {
      if (key.endsWith("DestinationDescription") && typeof value === "object" && key !== "S3DestinationDescription") {
        out.push(value);
      }
    }
    if (out.length === 0 && typeof destination["S3DestinationDescription"] === "object") {
      out.push(destination["S3DestinationDescription"]);
    }
  }
  return out;
}

function processorsOf(destination: DestinationDescription): string[] {
  const names: string[] = [];
  for (const processor of destination.ProcessingConfiguration?.Processors ?? []) {
    for (const parameter of processor.Parameters ?? []) {
      if (parameter.ParameterName === "LambdaArn") names.push(name(parameter.ParameterValue.replace(/:function:/, "/")));
    }
  }
  return names;
}

async function readSnapshot(signal: AbortSignal): Promise<Snapshot> {
  const [ledgers, tables, streams, deliveryNames, indices, metrics] = await Promise.all([
    awsRest<{ Ledgers: Array<{ Name: string }> }>("GET", "/ledgers", undefined, signal),
    awsJson<{ TableNames: string[] }>("DynamoDB_20120810.ListTables", {}, signal, "1.0"),
    awsJson<{ StreamNames: string[] }>("Kinesis_20131202.ListStreams", {}, signal),
    awsJson<{ DeliveryStreamNames: string[] }>("Firehose_20150804.ListDeliveryStreams", {}, signal),
    searchRequest("GET", "_cat/indices?format=json&h=index,docs.count&s=index", null, signal),
    metricsText(signal),
  ]);
  const delivery = await Promise.all(
    deliveryNames.DeliveryStreamNames.map((deliveryName) =>
      awsJson<{ DeliveryStreamDescription: DeliveryDescription }>(
        "Firehose_20150804.DescribeDeliveryStream", { DeliveryStreamName: deliveryName }, signal,
      ).then((answer) => answer.DeliveryStreamDescription)),
  );
  let indexRows: Snapshot["indices"] = [];
  if (indices.status === 200) {
    try {
      indexRows = JSON.parse(indices.text) as Snapshot["indices"];
    } catch {
      indexRows = [];
    }
  }
  return {
    at: performance.now(),
    health: functionHealth(metrics),
    ledgers: ledgers.Ledgers.map((ledger) => ledger.Name),
    tables: tables.TableNames,
    streams: streams.StreamNames,
    delivery,
    indices: indexRows,
  };
}

function rate(now: Snapshot, before: Snapshot | null, stream: string, metric: string): string {
  const current = now.delivery.find((d) => d.DeliveryStreamName === stream)?.SluiceMetrics?.[metric];
  const previous = before?.delivery.find((d) => d.DeliveryStreamName === stream)?.SluiceMetrics?.[metric];
  if (current === undefined || previous === undefined || !before) return "–";
  const seconds = (now.at - before.at) / 1000;
  return seconds > 0 ? `${((current - previous) / seconds).toFixed(1)}/s` : "–";
}

function keyValues(pairs: Array<[string, string | number | undefined]>): HTMLDListElement {
  const list = h("dl", { class: "kv" });
  for (const [key, value] of pairs) {
    if (value === undefined) continue;
    list.append(h("dt", {}, key), h("dd", {}, String(value)));
  }
  return list;
}

/** A record's data shown as JSON, text, or (Ion binary, other bytes) hexadecimal. */
export function decodeRecord(base64: string): { kind: string; text: string } {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  if (bytes[0] === 0xe0 && bytes[1] === 0x01 && bytes[2] === 0x00 && bytes[3] === 0xea) {
    // QLDB journal streams and other Ion producers: shown as Ion text, every type kept.
    try {
      return { kind: "Ion", text: ion.loadAll(bytes).map((value) => ion.dumpPrettyText(value)).join("\n") };
    } catch {
      return { kind: "Ion binary (unreadable)", text: hex(bytes) };
    }
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return { kind: "bytes", text: hex(bytes) };
  }
  try {
    return { kind: "JSON", text: JSON.stringify(JSON.parse(text), null, 2) };
  } catch {
    return { kind: "text", text };
  }
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(" ");
}

async function peek(stream: string, from: string, signal: AbortSignal): Promise<HTMLElement> {
  const shards = await awsJson<{ Shards: Array<{ ShardId: string }> }>("Kinesis_20131202.ListShards", { StreamName: stream }, signal);
  const table = h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "shard"), h("th", {}, "sequence number"), h("th", {}, "partition key"), h("th", {}, "kind"), h("th", {}, "data"))));
  const body = h("tbody");
  table.appendChild(body);
  for (const shard of shards.Shards) {
    const iterator = await awsJson<{ ShardIterator: string }>("Kinesis_20131202.GetShardIterator", {
      StreamName: stream, ShardId: shard.ShardId, ShardIteratorType: from,
    }, signal);
    const records = await awsJson<{ Records: Array<{ SequenceNumber: string; PartitionKey: string; Data: string }> }>(
      "Kinesis_20131202.GetRecords", { ShardIterator: iterator.ShardIterator, Limit: PEEK_RECORDS_MAX }, signal,
    );
    for (const record of records.Records) {
      const decoded = decodeRecord(record.Data);
      const shown = decoded.text.length > RECORD_TEXT_SHOWN_MAX ? decoded.text.slice(0, RECORD_TEXT_SHOWN_MAX) + " …" : decoded.text;
      body.appendChild(h("tr", {}, h("td", {}, shard.ShardId), h("td", { class: "mono" }, record.SequenceNumber),
        h("td", {}, record.PartitionKey), h("td", {}, decoded.kind), h("td", {}, h("pre", {}, shown))));
    }
  }
  if (!body.firstChild) return h("p", { class: "placeholder" }, `no records in ${stream} from ${from}`);
  return h("div", { class: "records" }, table);
}

export const pipelineView: View = {
  title: "Pipeline",
  mount(container, params, signal) {
    const refreshParam = Number(params.get("refresh") ?? REFRESH_DEFAULT_S);
    let refreshS = REFRESH_CHOICES_S.includes(refreshParam) ? refreshParam : REFRESH_DEFAULT_S;
    const refreshSelect = h("select", { "aria-label": "Refresh interval" },
      ...REFRESH_CHOICES_S.map((s) => h("option", { value: String(s), selected: s === refreshS }, s === 0 ? "Refresh off" : `Every ${s} s`)));
    const refreshButton = h("button", { type: "button" }, "Refresh");
    const status = h("span", { class: "hint", role: "status" });
    const map = h("div", { class: "flow" });
    const peekStream = h("select", { "aria-label": "Stream to peek" });
    const peekFrom = h("select", { "aria-label": "Peek from" },
      h("option", { value: "TRIM_HORIZON" }, "oldest (TRIM_HORIZON)"), h("option", { value: "LATEST" }, "newest (LATEST)"));
    const peekButton = h("button", { type: "button" }, "Peek");
    const peekOut = h("div", { class: "peek" });
    let previous: Snapshot | null = null;
    let timer: number | undefined;
    let inFlight: AbortController | null = null;

    const column = (title: string, cards: HTMLElement[]) =>
      h("section", { class: "flow-column", "aria-label": title }, h("h2", {}, title),
        cards.length ? h("div", { class: "cards" }, ...cards) : h("p", { class: "placeholder" }, "none"));

    const draw = (now: Snapshot) => {
      clear(map);
      const ledgerCards = [
        ...now.ledgers.map((ledger) => h("article", { class: "card" }, h("h3", {}, ledger), h("span", { class: "hint" }, "QLDB ledger"))),
        ...now.tables.map((table) => h("article", { class: "card" }, h("h3", {}, table), h("span", { class: "hint" }, "DynamoDB table"))),
      ];
      const streamCards = now.streams.map((stream) => {
        const readers = now.delivery.filter((d) => name(d.Source?.KinesisStreamSourceDescription?.KinesisStreamARN) === stream).map((d) => d.DeliveryStreamName);
        return h("article", { class: "card" }, h("h3", {}, stream), keyValues([["read by", readers.join(", ") || "–"]]));
      });
      const deliveryCards = now.delivery.map((d) => {
        const metrics = d.SluiceMetrics ?? {};
        const health = now.health.get(d.DeliveryStreamName);
        const processors = destinationsOf(d).flatMap(processorsOf)
          .map((fn) => (health?.failing.has(fn) ? `${fn} (failing)` : fn));
        const failures = [...(health?.failures ?? new Map<string, number>()).entries()]
          .map(([key, n]) => `${key} ×${n}`).join(", ");
        const failure = d.FailureDescription;
        return h("article", { class: "card", "data-delivery-stream": d.DeliveryStreamName },
          h("h3", {}, d.DeliveryStreamName),
          keyValues([
            ["status", d.DeliveryStreamStatus],
            ["source", d.DeliveryStreamType === "DirectPut" ? "Direct PUT" : name(d.Source?.KinesisStreamSourceDescription?.KinesisStreamARN)],
            ["functions", processors.join(", ") || undefined],
            ["incoming", metrics["IncomingRecords"]],
            ["incoming rate", rate(now, previous, d.DeliveryStreamName, "IncomingRecords")],
            ["delivered", metrics["DeliveryToElasticsearch.Records"]],
            ["delivery rate", rate(now, previous, d.DeliveryStreamName, "DeliveryToElasticsearch.Records")],
            ["freshness", metrics["DeliveryToElasticsearch.DataFreshness"] !== undefined ? `${metrics["DeliveryToElasticsearch.DataFreshness"]} s` : undefined],
            ["failed documents", metrics["FailedDocuments"]],
            ["processing failed", metrics["ProcessingFailedRecords"]],
            ["function failures", failures || undefined],
          ]),
          failure ? h("p", { class: "error", role: "alert" }, `${failure.Type ?? "failure"}: ${failure.Details ?? ""}`) : null);
      });
      const destinationCards: HTMLElement[] = [];
      for (const d of now.delivery) {
        for (const destination of destinationsOf(d)) {
          const index = destination.IndexName;
          const docs = index ? now.indices.filter((row) => row.index === index || row.index.startsWith(index + "-")) : [];
          const backup = destination.S3DestinationDescription?.BucketARN ?? destination.BucketARN;
          destinationCards.push(h("article", { class: "card", "data-destination-of": d.DeliveryStreamName },
            h("h3", {}, index ? `index ${index}` : `bucket ${name(backup?.replace(/:::/, "/"))}`),
            keyValues([
              ["from", d.DeliveryStreamName],
              ["documents", index ? String(docs.reduce((sum, row) => sum + Number(row["docs.count"] || 0), 0)) : undefined],
              ["indices", docs.map((row) => row.index).join(", ") || undefined],
              ["backup", index && backup ? name(backup.replace(/:::/, "/")) : undefined],
            ])));
        }
      }
      map.append(column("Ledgers and tables", ledgerCards), column("Streams", streamCards),
        column("Delivery streams", deliveryCards), column("Destinations", destinationCards));
      const selected = peekStream.value;
      clear(peekStream);
      for (const stream of now.streams) peekStream.appendChild(h("option", { value: stream, selected: stream === selected }, stream));
    };

    const refresh = async () => {
      inFlight?.abort();
      const controller = new AbortController();
      inFlight = controller;
      try {
        const now = await readSnapshot(controller.signal);
        draw(now);
        previous = now;
        status.textContent = `updated ${new Date().toLocaleTimeString()}`;
      } catch (error) {
        if (!isAbort(error)) status.textContent = `refresh failed: ${errorText(error)}`;
      } finally {
        if (inFlight === controller) inFlight = null;
      }
      schedule();
    };
    const schedule = () => {
      window.clearTimeout(timer);
      if (refreshS > 0 && !signal.aborted) timer = window.setTimeout(() => void refresh(), refreshS * 1000);
    };

    refreshSelect.addEventListener("change", () => {
      refreshS = Number(refreshSelect.value);
      updateParams({ refresh: String(refreshS) });
      schedule();
    });
    refreshButton.addEventListener("click", () => void refresh());
    peekButton.addEventListener("click", async () => {
      clear(peekOut);
      if (!peekStream.value) return;
      peekOut.appendChild(h("p", { class: "hint" }, "reading…"));
      try {
        const result = await peek(peekStream.value, peekFrom.value, signal);
        clear(peekOut);
        peekOut.appendChild(result);
      } catch (error) {
        clear(peekOut);
        if (!isAbort(error)) peekOut.appendChild(h("p", { class: "error", role: "alert" }, errorText(error)));
      }
    });
    signal.addEventListener("abort", () => {
      window.clearTimeout(timer);
      inFlight?.abort();
    });

    container.append(
      h("div", { class: "toolbar" }, refreshSelect, refreshButton, status),
      map,
      h("h2", {}, "Peek at a stream"),
      h("div", { class: "toolbar" }, peekStream, peekFrom, peekButton),
      peekOut,
    );
    void refresh();
  },
};
