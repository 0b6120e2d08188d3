// The UI server's saved objects API (`/api/saved_objects`): index patterns, searches,
// visualizations and dashboards, stored durably in the data directory.

import { signedFetch } from "./auth";

export interface SavedObject<A> {
  type: string;
  id: string;
  attributes: A;
  version: number;
  updated_at: string;
}

export interface IndexPatternAttributes {
  title: string;
  timeFieldName?: string;
}

async function answer<T>(response: Response): Promise<T> {
  const body = (await response.json()) as T & { message?: string };
  if (!response.ok) throw new Error(body.message ?? `${response.status}`);
  return body;
}

export async function listSaved<A>(type: string, signal?: AbortSignal): Promise<Array<SavedObject<A>>> {
  const response = await signedFetch(`/api/saved_objects?type=${encodeURIComponent(type)}`, { signal });
  return (await answer<{ saved_objects: Array<SavedObject<A>> }>(response)).saved_objects;
}

export async function saveObject<A>(type: string, id: string, attributes: A, signal?: AbortSignal): Promise<SavedObject<A>> {
  const response = await signedFetch(`/api/saved_objects/${encodeURIComponent(type)}/${encodeURIComponent(id)}`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ attributes }),
    signal,
  });
  return answer<SavedObject<A>>(response);
}

/** A saved object id from a title: letters, digits, - and _ only. */
export function idFromTitle(title: string): string {
  const id = title.toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "");
  return (id || "pattern").slice(0, 100);
}
