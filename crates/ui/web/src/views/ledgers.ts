// Ledger explorer: the ledgers of the QLDB control plane, a ledger's tables and indexes, a
// PartiQL editor whose results show as a table of Ion values (decimals, timestamps, blobs kept),
// a document's revision history with the differences between versions, and "verify", which
// fetches a digest and a proof and checks them in the page, step by step, trusting nothing the
// server computed. The revision, proof and digest stay editable, so a tampered one can be tried.

import * as ion from "ion-js";
import { awsRest, isAbort } from "../api";
import { clear, errorText, h } from "../dom";
import { cellText, execute, getDigest, getRevision, ionText, verifyRevision } from "../qldb";
import { updateParams } from "../router";
import type { View } from "../view";

interface LedgerSummary {
  Name: string;
  State: string;
  CreationDateTime: number | string;
}

/** Result rows shown at once; the rest are counted, not drawn. */
const RESULT_ROWS_SHOWN_MAX = 500;

function when(value: number | string | undefined): string {
  if (value === undefined) return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

function fieldsOf(value: ion.dom.Value): Array<[string, ion.dom.Value]> {
  if (value.getType() !== ion.IonTypes.STRUCT || value.isNull()) return [];
  return value.fields() as Array<[string, ion.dom.Value]>;
}

/** Values as a table: structs by their fields (the union of all rows'), anything else as one column. */
export function resultTable(values: ion.dom.Value[]): HTMLElement {
  const columns: string[] = [];
  for (const value of values.slice(0, RESULT_ROWS_SHOWN_MAX)) {
    for (const [name] of fieldsOf(value)) if (!columns.includes(name)) columns.push(name);
  }
  const structs = values.every((value) => value.getType() === ion.IonTypes.STRUCT && !value.isNull());
  const head = h("tr", {}, ...(structs ? columns : ["value"]).map((name) => h("th", { scope: "col" }, name)));
  const body = h("tbody");
  for (const value of values.slice(0, RESULT_ROWS_SHOWN_MAX)) {
    const cells = structs
      ? columns.map((name) => h("td", { class: "mono" }, cellText(value.get(name))))
      : [h("td", { class: "mono" }, ionText(value))];
    body.appendChild(h("tr", {}, ...cells));
  }
  return h("table", { class: "results" }, h("thead", {}, head), body);
}

/** Top-level fields of two versions' data: added, removed, changed, same. */
function diffRows(before: ion.dom.Value | null, after: ion.dom.Value | null): HTMLElement {
  const left = new Map(before ? fieldsOf(before) : []);
  const right = new Map(after ? fieldsOf(after) : []);
  const names = [...new Set([...left.keys(), ...right.keys()])];
  const rows = names.map((name) => {
    const a = left.get(name);
    const b = right.get(name);
    const change = !a ? "added" : !b ? "removed" : ionText(a) === ionText(b) ? "same" : "changed";
    return h("tr", { class: `diff-${change}` }, h("td", {}, name), h("td", {}, change),
      h("td", { class: "mono" }, a ? ionText(a) : ""), h("td", { class: "mono" }, b ? ionText(b) : ""));
  });
  return h("table", { class: "diff" },
    h("thead", {}, h("tr", {}, h("th", {}, "field"), h("th", {}, "change"), h("th", {}, "before"), h("th", {}, "after"))),
    h("tbody", {}, ...rows));
}

function ledgerPanel(ledger: string, params: URLSearchParams, signal: AbortSignal): HTMLElement {
  const info = h("dl", { class: "kv" });
  const tables = h("ul", { class: "table-list", "aria-label": "Tables" });

  // PartiQL
  const editor = h("textarea", { class: "partiql", rows: "4", spellcheck: "false", "aria-label": "PartiQL statement" });
  editor.value = params.get("statement") ?? "SELECT * FROM information_schema.user_tables";
  const runButton = h("button", { type: "button", class: "primary" }, "Run");
  const runStatus = h("div", { class: "response-status", role: "status", "aria-live": "polite" });
  const results = h("div", { class: "records" });

  // History and verification
  const historyTable = h("input", { type: "text", "aria-label": "Table", placeholder: "table" });
  const historyId = h("input", { type: "text", "aria-label": "Document id", placeholder: "document id" });
  const historyButton = h("button", { type: "button" }, "Show history");
  const history = h("div", { class: "history", "aria-live": "polite" });
  const revisionText = h("textarea", { rows: "6", spellcheck: "false", "aria-label": "Revision (Ion text)" });
  const proofText = h("textarea", { rows: "4", spellcheck: "false", "aria-label": "Proof (Ion text)" });
  const digestText = h("input", { type: "text", spellcheck: "false", "aria-label": "Digest (base64)" });
  const verifyButton = h("button", { type: "button", class: "primary" }, "Verify");
  const verdict = h("p", { class: "verdict", role: "status", "aria-live": "polite" });
  const steps = h("ol", { class: "steps", "aria-label": "Verification steps" });

  const run = async () => {
    updateParams({ statement: editor.value });
    runStatus.textContent = "running…";
    runStatus.className = "response-status";
    clear(results);
    try {
      const started = performance.now();
      const result = await execute(ledger, editor.value, signal);
      runStatus.textContent = `${result.values.length} ${result.values.length === 1 ? "value" : "values"}${result.cut ? " (more pages not read)" : ""} · ${Math.round(performance.now() - started)} ms`;
      runStatus.className = "response-status ok";
      results.appendChild(resultTable(result.values));
    } catch (error) {
      if (isAbort(error)) return;
      runStatus.textContent = errorText(error);
      runStatus.className = "response-status failed";
    }
  };

  const verify = async () => {
    clear(steps);
    verdict.textContent = "verifying…";
    verdict.className = "verdict";
    try {
      const outcome = await verifyRevision(revisionText.value, proofText.value, digestText.value);
      for (const step of outcome.steps) {
        const mark = step.ok === null ? "" : step.ok ? "✔ " : "✘ ";
        steps.appendChild(h("li", { class: step.ok === false ? "failed" : step.ok ? "ok" : "" },
          `${mark}${step.label}: `, h("code", {}, step.value)));
      }
      verdict.textContent = outcome.verified
        ? "Verified: the revision is in the ledger whose digest this is."
        : "Rejected: the revision or its proof does not lead to the digest.";
      verdict.className = `verdict ${outcome.verified ? "ok" : "failed"}`;
    } catch (error) {
      verdict.textContent = `Rejected: ${errorText(error)}`;
      verdict.className = "verdict failed";
    }
  };

  const prepareVerification = async (revision: ion.dom.Value) => {
    const blockAddress = revision.get("blockAddress");
    const id = revision.get("metadata", "id")?.stringValue();
    if (!blockAddress || !id) return;
    verdict.textContent = "fetching the digest and the proof…";
    try {
      const digest = await getDigest(ledger, signal);
      const fetched = await getRevision(ledger, ionText(blockAddress), id, digest.tip, signal);
      revisionText.value = fetched.revision;
      proofText.value = fetched.proof;
      digestText.value = digest.digest;
      await verify();
    } catch (error) {
      if (!isAbort(error)) verdict.textContent = `Rejected: ${errorText(error)}`;
    }
  };

  const showHistory = async () => {
    clear(history);
    const table = historyTable.value.trim();
    const id = historyId.value.trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(table)) {
      history.appendChild(h("p", { class: "error", role: "alert" }, "a table name is letters, digits and _"));
      return;
    }
    updateParams({ table, document: id });
    const statement = `SELECT * FROM history(${table}) AS h WHERE h.metadata.id = '${id.replace(/'/g, "''")}'`;
    try {
      const result = await execute(ledger, statement, signal);
      const versions = [...result.values].sort((a, b) =>
        Number(a.get("metadata", "version")?.numberValue() ?? 0) - Number(b.get("metadata", "version")?.numberValue() ?? 0));
      if (versions.length === 0) {
        history.appendChild(h("p", { class: "placeholder" }, `no revisions of ${id} in ${table}`));
        return;
      }
      versions.forEach((version, index) => {
        const number = version.get("metadata", "version")?.numberValue() ?? index;
        const verifyOne = h("button", { type: "button" }, `Verify version ${number}`);
        verifyOne.addEventListener("click", () => void prepareVerification(version));
        const previous = index > 0 ? versions[index - 1] ?? null : null;
        history.appendChild(h("section", { class: "card revision", "aria-label": `Version ${number}` },
          h("h3", {}, `Version ${number}`),
          h("dl", { class: "kv" },
            h("dt", {}, "block"), h("dd", { class: "mono" }, ionText(version.get("blockAddress"))),
            h("dt", {}, "hash"), h("dd", { class: "mono" }, ionText(version.get("hash"))),
            h("dt", {}, "txTime"), h("dd", { class: "mono" }, ionText(version.get("metadata", "txTime")))),
          diffRows(previous?.get("data") ?? null, version.get("data")),
          verifyOne));
      });
    } catch (error) {
      if (!isAbort(error)) history.appendChild(h("p", { class: "error", role: "alert" }, errorText(error)));
    }
  };

  const load = async () => {
    try {
      const description = await awsRest<{ State: string; CreationDateTime?: number; DeletionProtection?: boolean }>(
        "GET", `/ledgers/${encodeURIComponent(ledger)}`, undefined, signal);
      const rows: Array<[string, string]> = [
        ["state", description.State], ["created", when(description.CreationDateTime)],
        ["deletion protection", String(description.DeletionProtection ?? "")],
      ];
      try {
        const digest = await getDigest(ledger, signal);
        rows.push(["digest", digest.digest], ["digest tip", digest.tip]);
      } catch (error) {
        // A ledger without a committed block has no digest yet (QLDB says so too).
        if (isAbort(error)) return;
        rows.push(["digest", `none yet (${errorText(error)})`]);
      }
      for (const [key, value] of rows) info.append(h("dt", {}, key), h("dd", { class: "mono" }, value));
      const listed = await execute(ledger, "SELECT * FROM information_schema.user_tables", signal);
      clear(tables);
      for (const table of listed.values) {
        const name = table.get("name")?.stringValue() ?? "";
        const indexes = (table.get("indexes")?.elements() ?? []).map((index) => cellText(index.get("expr")));
        const button = h("button", { type: "button" }, name);
        button.addEventListener("click", () => {
          editor.value = `SELECT * FROM ${name}`;
          historyTable.value = name;
          void run();
        });
        tables.appendChild(h("li", {}, button, " ", h("span", { class: "hint" },
          `${table.get("status")?.stringValue() ?? ""}${indexes.length ? ` · indexes ${indexes.join(", ")}` : ""}`)));
      }
      if (listed.values.length === 0) tables.appendChild(h("li", { class: "placeholder" }, "no tables"));
    } catch (error) {
      if (!isAbort(error)) info.after(h("p", { class: "error", role: "alert" }, errorText(error)));
    }
  };

  runButton.addEventListener("click", () => void run());
  editor.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      event.preventDefault();
      void run();
    }
  });
  historyButton.addEventListener("click", () => void showHistory());
  verifyButton.addEventListener("click", () => void verify());
  historyTable.value = params.get("table") ?? "";
  historyId.value = params.get("document") ?? "";
  void load();

  return h("section", { class: "ledger-detail", "aria-label": `Ledger ${ledger}` },
    h("h2", {}, ledger), info,
    h("h3", {}, "Tables"), tables,
    h("h3", {}, "PartiQL"), editor, h("div", { class: "toolbar" }, runButton, h("span", { class: "hint" }, "Ctrl+Enter runs; each statement is its own transaction")),
    runStatus, results,
    h("h3", {}, "Revision history"), h("div", { class: "toolbar" }, historyTable, historyId, historyButton), history,
    h("h3", {}, "Verify a revision"),
    h("p", { class: "hint" }, "The page recomputes the revision's hash (Ion hash of metadata and data) and folds the proof up to the digest; edit any of them to see a tampered one rejected."),
    h("label", {}, "Revision", revisionText), h("label", {}, "Proof", proofText), h("label", {}, "Digest", digestText),
    h("div", { class: "toolbar" }, verifyButton), verdict, steps);
}

export const ledgersView: View = {
  title: "Ledgers",
  mount(container, params, signal) {
    const list = h("ul", { class: "ledger-list", "aria-label": "Ledgers" });
    const detail = h("div");
    const show = (name: string) => {
      updateParams({ ledger: name });
      clear(detail);
      detail.appendChild(ledgerPanel(name, currentParams(), signal));
    };
    const load = async () => {
      try {
        const answer = await awsRest<{ Ledgers: LedgerSummary[] }>("GET", "/ledgers", undefined, signal);
        clear(list);
        if (answer.Ledgers.length === 0) list.appendChild(h("li", { class: "placeholder" }, "no ledgers"));
        for (const ledger of answer.Ledgers) {
          const button = h("button", { type: "button" }, ledger.Name);
          button.addEventListener("click", () => show(ledger.Name));
          list.appendChild(h("li", {}, button, " ", h("span", { class: "hint" }, `${ledger.State} · ${when(ledger.CreationDateTime)}`)));
        }
        const chosen = params.get("ledger");
        if (chosen && answer.Ledgers.some((ledger) => ledger.Name === chosen)) {
          clear(detail);
          detail.appendChild(ledgerPanel(chosen, params, signal));
        }
      } catch (error) {
        if (!isAbort(error)) list.appendChild(h("li", { class: "error", role: "alert" }, errorText(error)));
      }
    };
    container.append(h("div", { class: "split" }, h("nav", { "aria-label": "Ledger list" }, list), detail));
    void load();
  },
};

function currentParams(): URLSearchParams {
  const hash = location.hash;
  const at = hash.indexOf("?");
  return new URLSearchParams(at < 0 ? "" : hash.slice(at + 1));
}
