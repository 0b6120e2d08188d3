// A small JSON syntax highlighter: splits text into tokens and wraps each in a span with a class
// (`tok-key`, `tok-string`, `tok-number`, `tok-literal`, `tok-punct`). It never parses: broken
// JSON is highlighted as far as it goes and the rest kept as plain text.

const TOKEN = /("(?:[^"\\\n]|\\.)*"?)(\s*:)?|(?<![\w.-])(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])|\b(true|false|null)\b|([{}[\],])/g;

export function highlightJson(text: string): DocumentFragment {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    const at = match.index ?? 0;
    if (at > last) fragment.appendChild(document.createTextNode(text.slice(last, at)));
    const [whole, string, colon, number, literal, punct] = match;
    if (string !== undefined) {
      fragment.appendChild(span(colon ? "tok-key" : "tok-string", string));
      if (colon) fragment.appendChild(span("tok-punct", colon));
    } else if (number !== undefined) {
      fragment.appendChild(span("tok-number", number));
    } else if (literal !== undefined) {
      fragment.appendChild(span("tok-literal", literal));
    } else if (punct !== undefined) {
      fragment.appendChild(span("tok-punct", punct));
    }
    last = at + whole.length;
  }
  if (last < text.length) fragment.appendChild(document.createTextNode(text.slice(last)));
  return fragment;
}

function span(className: string, text: string): HTMLSpanElement {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

/** Pretty-prints JSON text, or returns it unchanged when it is not JSON (`_cat` tables). */
export function formatJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
