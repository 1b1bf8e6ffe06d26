/**
 * The users directory (`GET /api/users`): search for the new-chat and add-people
 * panels, and display names for the ids that chats, messages and typing carry. An id
 * not known yet shows as itself until its lookup (by exact id) answers.
 */

/** A user as the directory lists one. */
export interface User {
  id: string;
  name: string;
  roles: string[];
}

/** Names by id, filled as users are seen. */
export class Directory {
  private readonly names = new Map<string, string>();
  private readonly asked = new Set<string>();

  constructor(
    private readonly apiUrl: string,
    private readonly token: () => Promise<string>,
    private readonly changed: () => void,
  ) {}

  /**
   * Users whose name starts with `query` (any case) or whose id is `query`. The api
   * refuses queries shorter than two characters (a student must not list the school).
   */
  async search(query: string): Promise<User[]> {
    const q = query.trim();
    if ([...q].length < 2) return [];
    const response = await fetch(`${this.apiUrl}/api/users?${new URLSearchParams({ q, limit: "20" })}`, {
      headers: { authorization: `Bearer ${await this.token()}` },
    });
    if (!response.ok) throw new Error(`user search failed (${response.status})`);
    const page = (await response.json()) as { items: User[] };
    for (const user of page.items) this.names.set(user.id, user.name);
    return page.items;
  }

  /** The name to show for a user id. */
  name(userId: string): string {
    const known = this.names.get(userId);
    if (known) return known;
    if (!this.asked.has(userId)) {
      this.asked.add(userId);
      this.search(userId)
        .then((users) => {
          if (users.some((user) => user.id === userId)) this.changed();
        })
        .catch(() => this.asked.delete(userId));
    }
    return userId;
  }

  /** Records a name learnt elsewhere (the signed-in user's own). */
  learn(userId: string, name: string): void {
    this.names.set(userId, name);
  }
}
