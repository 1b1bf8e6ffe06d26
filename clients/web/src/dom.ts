/**
 * Building DOM without HTML strings: every text a user wrote becomes a text node, so
 * no message, name or title can inject markup. Links (http and https only) are the
 * one thing made of a message's text, as anchors whose `href` is set as a property.
 */

type Child = Node | string | null | undefined | false;

/** An element with attributes (strings, or listeners for `on*`) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | boolean | ((event: Event) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else if (value !== false) element.setAttribute(name, value);
  }
  for (const child of children) if (child) element.append(child);
  return element;
}

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+/g;

/** A message's text as text nodes, with its http(s) URLs as links opening a new tab. */
export function linkified(text: string): DocumentFragment {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    // A sentence's closing punctuation is not part of the link.
    const url = match[0].replace(/[.,;:!?)\]]+$/, "");
    const start = match.index ?? 0;
    fragment.append(text.slice(last, start));
    const link = h("a", { target: "_blank", rel: "noopener noreferrer" }, url);
    link.href = url;
    fragment.append(link);
    last = start + url.length;
  }
  fragment.append(text.slice(last));
  return fragment;
}

/** `12:04`, or `3 Dec 12:04` for another day. */
export function shortTime(timestamp: string): string {
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return "";
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return date.toDateString() === new Date().toDateString()
    ? time
    : `${date.toLocaleDateString([], { day: "numeric", month: "short" })} ${time}`;
}
