// Console: any request to the search API, written as Kibana's Dev Tools writes it (a request line
// `GET _cat/indices?v`, then an optional JSON or NDJSON body), with JSON highlighting, completion of
// endpoints and Query DSL keys, a history in localStorage, a formatted answer and "copy as curl".

import { currentConfig, isAbort, searchRequest } from "../api";
import { clear, errorText, h } from "../dom";
import { formatJson, highlightJson } from "../highlight";
import { updateParams } from "../router";
import type { View } from "../view";

const HISTORY_KEY = "sluice.console.history";
/** Requests kept in the history; the oldest is dropped beyond it. */
const HISTORY_MAX = 50;
/** Completions shown at once; the rest appear as the prefix narrows them. */
const COMPLETIONS_SHOWN_MAX = 12;
const METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD"];
const DEFAULT_REQUEST = 'GET _search\n{\n  "query": {\n    "match_all": {}\n  }\n}';

const ENDPOINTS = [
  "_search", "_count", "_msearch", "_bulk", "_mapping", "_settings", "_aliases", "_alias",
  "_cat/indices?v", "_cat/aliases?v", "_cat/count?v", "_cat/health?v", "_cluster/health",
  "_field_caps?fields=*", "_resolve/index/*", "_index_template", "_template", "_analyze",
  "_doc", "_create", "_update", "_refresh", "_delete_by_query", "_mget", "_stats",
];

const DSL_KEYS = [
  "query", "aggs", "aggregations", "size", "from", "sort", "_source", "track_total_hits",
  "search_after", "post_filter", "highlight", "fields", "docvalue_fields", "script_fields",
  "bool", "must", "must_not", "should", "filter", "minimum_should_match", "boost",
  "match", "match_all", "match_none", "match_phrase", "match_phrase_prefix", "multi_match",
  "term", "terms", "range", "exists", "prefix", "wildcard", "regexp", "fuzzy", "ids",
  "query_string", "simple_query_string", "default_field", "default_operator",
  "constant_score", "dis_max", "function_score", "boosting", "nested",
  "gt", "gte", "lt", "lte", "format", "time_zone", "operator", "analyzer", "fuzziness",
  "terms", "date_histogram", "histogram", "avg", "sum", "min", "max", "value_count",
  "cardinality", "percentiles", "stats", "extended_stats", "top_hits", "filters",
  "field", "interval", "calendar_interval", "fixed_interval", "order", "min_doc_count",
  "mappings", "properties", "type", "settings", "number_of_shards", "number_of_replicas",
];

interface Parsed {
  method: string;
  path: string;
  body: string;
}

/** Splits the editor's text into its request line and body. */
export function parseRequest(text: string): Parsed {
  const lines = text.replace(/^\s*\n/, "").split("\n");
  const first = (lines.shift() ?? "").trim();
  const [word = "", ...rest] = first.split(/\s+/);
  const upper = word.toUpperCase();
  const hasMethod = METHODS.includes(upper);
  const path = (hasMethod ? rest.join(" ") : first).trim() || "/";
  return { method: hasMethod ? upper : "GET", path, body: lines.join("\n").trim() };
}

/** The request as a shell command, quoted for POSIX shells. */
export function curlCommand(request: Parsed, baseUrl: string): string {
  const quote = (text: string) => "'" + text.replace(/'/g, "'\\''") + "'";
  const url = baseUrl + (request.path.startsWith("/") ? request.path : "/" + request.path);
  const parts = ["curl", "-X", request.method, quote(url)];
  if (request.body) {
    const ndjson = /(^|\/)_(bulk|msearch)(\?|$)/.test(request.path);
    const body = ndjson ? request.body + "\n" : request.body;
    parts.push("-H", quote(`Content-Type: application/${ndjson ? "x-ndjson" : "json"}`));
    parts.push(ndjson ? "--data-binary" : "-d", quote(body));
  }
  return parts.join(" ");
}

function loadHistory(): string[] {
  try {
    const parsed: unknown = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? "[]");
    return Array.isArray(parsed) ? parsed.filter((item): item is string => typeof item === "string") : [];
  } catch {
    return [];
  }
}

function remember(text: string): void {
  const history = [text, ...loadHistory().filter((item) => item !== text)].slice(0, HISTORY_MAX);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(history));
}

/** What completion offers at the caret: the word being typed and its candidates. */
function completionsAt(text: string, caret: number): { start: number; words: string[] } {
  const before = text.slice(0, caret);
  const lineStart = before.lastIndexOf("\n") + 1;
  if (lineStart === 0) {
    // The request line: after the method, complete the path's last segment.
    const match = /^\s*[A-Za-z]+\s+(?:[^\s/]+\/)?([^\s/]*)$/.exec(before);
    if (!match) return { start: caret, words: [] };
    const prefix = match[1] ?? "";
    return { start: caret - prefix.length, words: ENDPOINTS.filter((e) => e.startsWith(prefix) && e !== prefix) };
  }
  const key = /"([A-Za-z_]*)$/.exec(before);
  if (!key) return { start: caret, words: [] };
  const prefix = key[1] ?? "";
  const words = [...new Set(DSL_KEYS)].filter((k) => k.startsWith(prefix) && k !== prefix);
  return { start: caret - prefix.length, words };
}

export const consoleView: View = {
  title: "Console",
  mount(container, params, signal) {
    const initial = params.get("request") ?? loadHistory()[0] ?? DEFAULT_REQUEST;
    const editor = h("textarea", {
      class: "editor-input",
      spellcheck: "false",
      autocapitalize: "off",
      "aria-label": "Request",
      "aria-autocomplete": "list",
      "aria-controls": "console-completions",
    });
    editor.value = initial;
    const highlight = h("pre", { class: "editor-highlight", "aria-hidden": "true" });
    const completions = h("ul", { class: "completions", id: "console-completions", role: "listbox", hidden: true });
    const status = h("div", { class: "response-status", role: "status", "aria-live": "polite" });
    const output = h("pre", { class: "response-body", tabindex: "0", role: "region", "aria-label": "Response body" });
    const curlOut = h("textarea", { class: "curl", readonly: true, rows: "3", "aria-label": "curl command", hidden: true });
    const sendButton = h("button", { type: "button", class: "primary" }, "Send");
    const cancelButton = h("button", { type: "button", disabled: true }, "Cancel");
    const curlButton = h("button", { type: "button" }, "Copy as curl");
    const historySelect = h("select", { "aria-label": "History" });

    let inFlight: AbortController | null = null;
    let selected = 0;
    let offered: { start: number; words: string[] } = { start: 0, words: [] };

    const renderHighlight = () => {
      clear(highlight);
      // The request line is not JSON: its method stands out, its path stays plain. A trailing
      // newline keeps the overlay as tall as the textarea's last empty line.
      const text = editor.value + "\n";
      const lineEnd = text.indexOf("\n");
      const requestLine = /^(\s*)([A-Za-z]+)(.*)$/.exec(text.slice(0, lineEnd));
      if (requestLine) {
        highlight.append(requestLine[1] ?? "", h("span", { class: "tok-method" }, requestLine[2] ?? ""), requestLine[3] ?? "");
      } else {
        highlight.append(text.slice(0, lineEnd));
      }
      highlight.appendChild(highlightJson(text.slice(lineEnd)));
      highlight.scrollTop = editor.scrollTop;
      highlight.scrollLeft = editor.scrollLeft;
    };
    const renderHistory = () => {
      clear(historySelect);
      historySelect.appendChild(h("option", { value: "" }, "History…"));
      for (const [index, item] of loadHistory().entries()) {
        historySelect.appendChild(h("option", { value: String(index) }, item.split("\n")[0] ?? ""));
      }
    };
    const closeCompletions = () => {
      completions.hidden = true;
      offered = { start: 0, words: [] };
    };
    const renderCompletions = () => {
      offered = completionsAt(editor.value, editor.selectionStart);
      clear(completions);
      if (offered.words.length === 0) {
        completions.hidden = true;
        return;
      }
      selected = Math.min(selected, offered.words.length - 1);
      offered.words.slice(0, COMPLETIONS_SHOWN_MAX).forEach((word, index) => {
        const item = h("li", { role: "option", "aria-selected": String(index === selected) }, word);
        item.addEventListener("mousedown", (event) => {
          event.preventDefault();
          accept(index);
        });
        completions.appendChild(item);
      });
      completions.hidden = false;
    };
    const accept = (index: number) => {
      const word = offered.words[index];
      if (word === undefined) return;
      const caret = editor.selectionStart;
      editor.setRangeText(word, offered.start, caret, "end");
      closeCompletions();
      renderHighlight();
    };

    const send = async () => {
      inFlight?.abort();
      const controller = new AbortController();
      inFlight = controller;
      signal.addEventListener("abort", () => controller.abort(), { once: true });
      const request = parseRequest(editor.value);
      remember(editor.value);
      renderHistory();
      updateParams({ request: editor.value });
      status.textContent = `${request.method} ${request.path} …`;
      status.className = "response-status";
      cancelButton.disabled = false;
      try {
        const answer = await searchRequest(request.method, request.path, request.body || null, controller.signal);
        status.textContent = `${answer.status} ${answer.statusText} · ${Math.round(answer.elapsedMs)} ms`;
        status.className = "response-status " + (answer.status < 400 ? "ok" : "failed");
        clear(output);
        output.appendChild(highlightJson(formatJson(answer.text)));
      } catch (error) {
        status.textContent = isAbort(error) ? "cancelled" : `request failed: ${errorText(error)}`;
        status.className = "response-status failed";
      } finally {
        if (inFlight === controller) {
          inFlight = null;
          cancelButton.disabled = true;
        }
      }
    };

    editor.addEventListener("input", () => {
      renderHighlight();
      selected = 0;
      renderCompletions();
    });
    editor.addEventListener("scroll", renderHighlight);
    editor.addEventListener("blur", closeCompletions);
    editor.addEventListener("keydown", (event) => {
      if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
        event.preventDefault();
        closeCompletions();
        void send();
        return;
      }
      if (completions.hidden) return;
      const shown = Math.min(offered.words.length, COMPLETIONS_SHOWN_MAX);
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        selected = (selected + (event.key === "ArrowDown" ? 1 : shown - 1)) % shown;
        renderCompletions();
      } else if (event.key === "Tab" || event.key === "Enter") {
        event.preventDefault();
        accept(selected);
      } else if (event.key === "Escape") {
        closeCompletions();
      }
    });
    sendButton.addEventListener("click", () => void send());
    cancelButton.addEventListener("click", () => inFlight?.abort());
    curlButton.addEventListener("click", () => {
      curlOut.value = curlCommand(parseRequest(editor.value), currentConfig().search_url);
      curlOut.hidden = false;
      curlOut.select();
      navigator.clipboard?.writeText(curlOut.value).catch(() => undefined);
    });
    historySelect.addEventListener("change", () => {
      const item = loadHistory()[Number(historySelect.value)];
      if (item !== undefined) {
        editor.value = item;
        renderHighlight();
      }
      historySelect.value = "";
    });
    signal.addEventListener("abort", () => inFlight?.abort());

    renderHighlight();
    renderHistory();
    container.append(
      h("div", { class: "console" },
        h("section", { class: "console-request", "aria-label": "Request editor" },
          h("div", { class: "toolbar" }, sendButton, cancelButton, curlButton, historySelect,
            h("span", { class: "hint" }, "Ctrl+Enter sends · Tab completes")),
          h("div", { class: "editor" }, highlight, editor, completions),
          curlOut),
        h("section", { class: "console-response", "aria-label": "Response" }, status, output)),
    );
  },
};
