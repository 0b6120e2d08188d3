// A view that is not built yet: says so plainly instead of pretending.

import { h } from "../dom";
import type { View } from "../view";

export function placeholderView(title: string, text: string): View {
  return {
    title,
    mount(container) {
      container.appendChild(h("p", { class: "placeholder" }, text));
    },
  };
}
