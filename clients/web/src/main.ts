/**
 * The web client's entry: where the api and the edge are, then the sign-in form or
 * the chat app. The api is the page's own origin (it serves these files); the edge's
 * WebSocket URL comes from `?ws=` or, on the development ports, the edge next to the
 * api (:8082), else `/ws` on the page's origin (behind one reverse proxy).
 */

import "./style.css";
import { startApp } from "./app.js";
import { savedIdentity } from "./session.js";
import { showSignIn } from "./signin.js";

function wsUrl(): string {
  const given = new URLSearchParams(location.search).get("ws");
  if (given) return given;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const host = location.port === "8080" ? `${location.hostname}:8082` : location.host;
  return `${scheme}//${host}/ws`;
}

const root = document.getElementById("app");
if (root) {
  const urls = { apiUrl: location.origin, wsUrl: wsUrl() };
  const begin = (): void => {
    const identity = savedIdentity();
    if (identity) startApp(root, urls, identity, begin);
    else showSignIn(root, urls.apiUrl, begin);
  };
  begin();
}
