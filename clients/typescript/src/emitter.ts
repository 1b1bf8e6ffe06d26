/**
 * A small typed event emitter, so the SDK depends on neither Node's `events` nor the
 * DOM's `EventTarget` and works the same in both.
 * @module
 */

/** Listener maps: event name → listener argument. */
export type Listener<T> = (value: T) => void;

/** Emits typed events; a throwing listener is reported, never breaks the others. */
export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(name, listener);
  }

  /** Removes a listener. */
  off<K extends keyof Events>(name: K, listener: Listener<Events[K]>): void {
    this.listeners.get(name)?.delete(listener as Listener<never>);
  }

  /** Resolves with the first value of `name` that passes `filter`. */
  once<K extends keyof Events>(name: K, filter: (value: Events[K]) => boolean = () => true): Promise<Events[K]> {
    return new Promise((resolve) => {
      const off = this.on(name, (value) => {
        if (filter(value)) {
          off();
          resolve(value);
        }
      });
    });
  }

  /** Calls every listener of `name`. */
  emit<K extends keyof Events>(name: K, value: Events[K]): void {
    for (const listener of [...(this.listeners.get(name) ?? [])]) {
      try {
        (listener as Listener<Events[K]>)(value);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
