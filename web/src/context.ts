import type { Api, Org, User } from "./api";

/** What every screen gets: the API client and who is signed in. */
export interface AppContext {
  api: Api;
  user: User;
  org: Org;
  isAdmin: boolean;
  /** What follows the screen's id in the address: `#/ask/<id>` gives the ask screen ["<id>"]. */
  params: string[];
  /**
   * Changes the address to `#/<route>`. `quiet` only records it (the screen stays as it is, a stream in
   * flight goes on), so that a reload or a bookmark comes back to the same place.
   */
  navigate(route: string, quiet?: boolean): void;
  signOut(reason?: string): void;
}

/**
 * A screen of the signed-in console: one entry of the navigation. Features add theirs to SCREENS
 * (screens.ts) — conversations, API keys — without touching the shell. `render` fills `root` and may
 * return a cleanup function, called when the person leaves the screen (timers, streams in flight).
 */
export interface Screen {
  id: string;
  title: string;
  adminOnly?: boolean;
  render(ctx: AppContext, root: HTMLElement): (() => void) | void;
}
