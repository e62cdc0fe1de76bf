import { ApiError } from "./api";

/** The message shown for any failure: the API's error body in words, or what else went wrong. */
export function messageOf(err: unknown): string {
  if (err instanceof ApiError) return err.describe();
  if (err instanceof Error) return err.message;
  return String(err);
}
