import type { ApiKey, KeyScope } from "./api";

/** What each scope lets a program do (the API's own definitions, README "API keys"). */
export const SCOPES: { value: KeyScope; label: string }[] = [
  { value: "query", label: "Query: ask questions only" },
  { value: "write", label: "Write: also add, list, re-ingest and delete documents" },
  { value: "admin", label: "Admin: everything, members and API keys included" },
];

/**
 * The expiry to send for the value of a `datetime-local` field (the person's own time, no zone): an
 * ISO 8601 instant with its zone, which the API requires; null for an empty field. Throws a sentence
 * for people when the value is not a date or is not in the future.
 */
export function expiryFromLocal(value: string, now: Date = new Date()): string | null {
  if (!value.trim()) return null;
  // "2030-01-01T09:30" without a zone is local time in ECMAScript's Date parsing, as the field means it.
  const when = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value) ? new Date(value) : new Date(NaN);
  if (Number.isNaN(when.getTime())) throw new Error("The expiry is not a date and time.");
  if (when.getTime() <= now.getTime()) throw new Error("The expiry must be in the future (or left empty).");
  return when.toISOString();
}

/** Whether a key has passed its expiry (the API lists expired keys until they are revoked). */
export function isExpired(key: ApiKey, now: Date = new Date()): boolean {
  return key.expires_at !== null && new Date(key.expires_at).getTime() <= now.getTime();
}
