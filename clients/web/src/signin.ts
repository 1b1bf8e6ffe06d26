/** The development sign-in form: a recent identity, or a user id, name and role. */

import { h } from "./dom.js";
import { type Identity, mint, recentIdentities, remember } from "./session.js";

const ID_PATTERN = "[A-Za-z0-9_\\-]{1,64}";

/** Shows the form; `done` runs once the tab has an identity whose token was minted. */
export function showSignIn(root: HTMLElement, apiUrl: string, done: () => void): void {
  const error = h("p", { class: "error", role: "alert" });
  const signIn = async (identity: Identity): Promise<void> => {
    error.textContent = "";
    try {
      await mint(apiUrl, identity);
      remember(identity);
      done();
    } catch (failure) {
      error.textContent = failure instanceof Error ? failure.message : String(failure);
    }
  };
  const userId = h("input", { id: "signin-user", name: "user", required: true, pattern: ID_PATTERN, autocomplete: "username", placeholder: "ann" });
  const name = h("input", { id: "signin-name", name: "name", required: true, maxlength: "100", placeholder: "Ann Lee" });
  const role = h("select", { id: "signin-role", name: "role" }, h("option", { value: "student" }, "student"), h("option", { value: "teacher" }, "teacher"));
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: (event) => {
        event.preventDefault();
        void signIn({ userId: userId.value.trim(), name: name.value.trim(), role: role.value === "teacher" ? "teacher" : "student" });
      },
    },
    h("h1", {}, "edu-chat"),
    h("p", { class: "hint" }, "Development sign-in: any user id and name (no password)."),
    h("label", { for: "signin-user" }, "User id"),
    userId,
    h("label", { for: "signin-name" }, "Name"),
    name,
    h("label", { for: "signin-role" }, "Role"),
    role,
    h("button", { type: "submit", id: "signin-submit" }, "Sign in"),
    error,
  );
  const recent = recentIdentities();
  if (recent.length > 0) {
    form.append(
      h("h2", {}, "Recent"),
      h(
        "ul",
        { class: "recent" },
        ...recent.map((identity) =>
          h("li", {}, h("button", { type: "button", onclick: () => void signIn(identity) }, `${identity.name} (${identity.userId})`)),
        ),
      ),
    );
  }
  root.replaceChildren(form);
  userId.focus();
}
