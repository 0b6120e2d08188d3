// Hash routing: `#/<view>?<params>`. Everything a view shows (its query, time range, refresh
// interval, selection) lives in the params, so a copied link reopens exactly that.

export interface Route {
  view: string;
  params: URLSearchParams;
}

export function currentRoute(): Route {
  const hash = location.hash.replace(/^#\/?/, "");
  const [view = "", query = ""] = splitOnce(hash, "?");
  return { view: decodeURIComponent(view), params: new URLSearchParams(query) };
}

export function href(view: string, params?: Record<string, string>): string {
  const query = params ? new URLSearchParams(params).toString() : "";
  return `#/${view}${query ? "?" + query : ""}`;
}

/** Goes to a view (a new history entry, so Back returns). */
export function navigate(view: string, params?: Record<string, string>): void {
  location.hash = href(view, params);
}

/**
 * Changes the current view's params without remounting it: the URL follows the view's state.
 * Values that are empty strings are dropped.
 */
export function updateParams(patch: Record<string, string | null>): void {
  const route = currentRoute();
  for (const [key, value] of Object.entries(patch)) {
    if (value === null || value === "") route.params.delete(key);
    else route.params.set(key, value);
  }
  const query = route.params.toString();
  history.replaceState(null, "", `#/${route.view}${query ? "?" + query : ""}`);
}

function splitOnce(text: string, separator: string): [string, string] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + 1)];
}
