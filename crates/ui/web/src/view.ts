// What every view of the app implements: it builds itself into `container` from the route's
// params and stops all its work (requests, timers) when `signal` aborts, as it does when the
// user leaves the view.

export interface View {
  title: string;
  mount(container: HTMLElement, params: URLSearchParams, signal: AbortSignal): void;
}
