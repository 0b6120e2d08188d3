// Ledger explorer: the ledgers of the QLDB control plane (ListLedgers, DescribeLedger, GetDigest),
// each with its state and current digest. PartiQL, revision history and in-browser verification
// are not built yet (see the view's note).

import { awsRest, isAbort } from "../api";
import { clear, errorText, h } from "../dom";
import { updateParams } from "../router";
import type { View } from "../view";

interface LedgerSummary {
  Name: string;
  State: string;
  CreationDateTime: number | string;
}

interface LedgerDescription {
  Name: string;
  Arn?: string;
  State: string;
  CreationDateTime?: number | string;
  DeletionProtection?: boolean;
  PermissionsMode?: string;
}

interface Digest {
  Digest: string;
  DigestTipAddress: { IonText: string };
}

function when(value: number | string | undefined): string {
  if (value === undefined) return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export const ledgersView: View = {
  title: "Ledgers",
  mount(container, params, signal) {
    const list = h("ul", { class: "ledger-list", "aria-label": "Ledgers" });
    const detail = h("section", { class: "ledger-detail", "aria-live": "polite" });

    const show = async (name: string) => {
      updateParams({ ledger: name });
      clear(detail);
      detail.appendChild(h("h2", {}, name));
      try {
        const path = `/ledgers/${encodeURIComponent(name)}`;
        const [description, digest] = await Promise.all([
          awsRest<LedgerDescription>("GET", path, undefined, signal),
          awsRest<Digest>("POST", `${path}/digest`, undefined, signal),
        ]);
        const rows: Array<[string, string]> = [
          ["state", description.State],
          ["created", when(description.CreationDateTime)],
          ["deletion protection", String(description.DeletionProtection ?? "")],
          ["permissions mode", description.PermissionsMode ?? ""],
          ["ARN", description.Arn ?? ""],
          ["digest (SHA-256, base64)", digest.Digest],
          ["digest tip address", digest.DigestTipAddress.IonText],
        ];
        const table = h("dl", { class: "kv" });
        for (const [key, value] of rows) table.append(h("dt", {}, key), h("dd", { class: "mono" }, value));
        detail.append(table,
          h("p", { class: "placeholder" }, "PartiQL, revision history and in-browser verification are not built yet; `sluice sql` and `sluice ledger verify` do them from the command line."));
      } catch (error) {
        if (!isAbort(error)) detail.appendChild(h("p", { class: "error", role: "alert" }, errorText(error)));
      }
    };

    const load = async () => {
      try {
        const answer = await awsRest<{ Ledgers: LedgerSummary[] }>("GET", "/ledgers", undefined, signal);
        clear(list);
        if (answer.Ledgers.length === 0) list.appendChild(h("li", { class: "placeholder" }, "no ledgers"));
        for (const ledger of answer.Ledgers) {
          const button = h("button", { type: "button" }, ledger.Name);
          button.addEventListener("click", () => void show(ledger.Name));
          list.appendChild(h("li", {}, button, " ", h("span", { class: "hint" }, `${ledger.State} · ${when(ledger.CreationDateTime)}`)));
        }
        const chosen = params.get("ledger");
        if (chosen && answer.Ledgers.some((ledger) => ledger.Name === chosen)) void show(chosen);
      } catch (error) {
        if (!isAbort(error)) list.appendChild(h("li", { class: "error", role: "alert" }, errorText(error)));
      }
    };

    container.append(h("div", { class: "split" }, h("nav", { "aria-label": "Ledger list" }, list), detail));
    void load();
  },
};
