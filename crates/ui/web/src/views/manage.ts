// Saved objects: every index pattern, search, visualization and dashboard kept by the UI server,
// with delete, an NDJSON export (a download of /api/saved_objects/_export) and an import.

import { isAbort } from "../api";
import { clear, errorText, h } from "../dom";
import type { View } from "../view";
import { signedFetch } from "../auth";

interface Listed {
  type: string;
  id: string;
  attributes: { title?: string };
  version: number;
  updated_at: string;
}

export const manageView: View = {
  title: "Saved objects",
  mount(container, _params, signal) {
    const status = h("p", { class: "response-status", role: "status", "aria-live": "polite" });
    const body = h("tbody");
    const file = h("input", { type: "file", accept: ".ndjson,application/x-ndjson", "aria-label": "NDJSON file to import" });
    const overwrite = h("input", { type: "checkbox", id: "import-overwrite" });
    const importButton = h("button", { type: "button" }, "Import");
    const exportLink = h("a", { href: "/api/saved_objects/_export", download: "export.ndjson" }, "Export all as NDJSON");

    const load = async () => {
      try {
        const response = await signedFetch("/api/saved_objects", { signal });
        const answer = (await response.json()) as { saved_objects: Listed[] };
        clear(body);
        for (const object of answer.saved_objects) {
          const remove = h("button", { type: "button", "aria-label": `Delete ${object.type} ${object.id}` }, "Delete");
          remove.addEventListener("click", async () => {
            const deleted = await signedFetch(`/api/saved_objects/${encodeURIComponent(object.type)}/${encodeURIComponent(object.id)}`, { method: "DELETE", signal });
            status.textContent = deleted.ok ? `deleted ${object.type} ${object.id}` : `not deleted (${deleted.status})`;
            void load();
          });
          body.appendChild(h("tr", {}, h("td", {}, object.type), h("td", { class: "mono" }, object.id),
            h("td", {}, object.attributes.title ?? ""), h("td", {}, String(object.version)),
            h("td", {}, new Date(object.updated_at).toLocaleString()), h("td", {}, remove)));
        }
        if (answer.saved_objects.length === 0) body.appendChild(h("tr", {}, h("td", { colspan: "6", class: "placeholder" }, "no saved objects")));
      } catch (error) {
        if (!isAbort(error)) status.textContent = errorText(error);
      }
    };
    importButton.addEventListener("click", async () => {
      const chosen = file.files?.[0];
      if (!chosen) {
        status.textContent = "choose an NDJSON file first";
        return;
      }
      try {
        const response = await signedFetch(`/api/saved_objects/_import?overwrite=${overwrite.checked}`, {
          method: "POST", headers: { "Content-Type": "application/x-ndjson" }, body: await chosen.text(), signal,
        });
        const answer = (await response.json()) as { successCount?: number; errors?: unknown[]; message?: string };
        status.textContent = response.ok
          ? `imported ${answer.successCount ?? 0}${answer.errors?.length ? `, ${answer.errors.length} already existed` : ""}`
          : `not imported: ${answer.message ?? response.status}`;
        void load();
      } catch (error) {
        if (!isAbort(error)) status.textContent = errorText(error);
      }
    });
    container.append(
      h("div", { class: "toolbar" }, exportLink, file, h("label", { for: "import-overwrite" }, overwrite, " overwrite existing"), importButton),
      status,
      h("table", { class: "saved-objects" },
        h("thead", {}, h("tr", {}, ...["type", "id", "title", "version", "updated", ""].map((name) => h("th", { scope: "col" }, name)))),
        body),
    );
    void load();
  },
};
