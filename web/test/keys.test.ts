import { describe, expect, it } from "vitest";
import type { ApiKey } from "../src/api";
import { expiryFromLocal, isExpired } from "../src/keys";

const now = new Date("2030-06-01T12:00:00Z");

describe("expiryFromLocal", () => {
  it("sends nothing for an empty field", () => {
    expect(expiryFromLocal("", now)).toBeNull();
    expect(expiryFromLocal("  ", now)).toBeNull();
  });

  it("reads the field as local time and sends an instant with its zone", () => {
    const sent = expiryFromLocal("2031-01-02T03:04", now);
    expect(sent).toMatch(/Z$/);
    expect(new Date(sent!).getTime()).toBe(new Date(2031, 0, 2, 3, 4).getTime());
  });

  it("refuses a past expiry and what is not a date, in words", () => {
    expect(() => expiryFromLocal("2020-01-01T00:00", now)).toThrow("must be in the future");
    expect(() => expiryFromLocal("tomorrow", now)).toThrow("not a date");
    expect(() => expiryFromLocal("2031-13-45T99:99", now)).toThrow("not a date");
  });
});

describe("isExpired", () => {
  const key: ApiKey = {
    id: "k",
    name: "bot",
    scope: "query",
    prefix: "rag_abcdefgh",
    created_at: "2030-01-01T00:00:00Z",
    last_used_at: null,
    expires_at: null,
  };

  it("never for a key without expiry; after its expiry otherwise", () => {
    expect(isExpired(key, now)).toBe(false);
    expect(isExpired({ ...key, expires_at: "2030-06-01T11:59:59Z" }, now)).toBe(true);
    expect(isExpired({ ...key, expires_at: "2030-06-01T12:00:01Z" }, now)).toBe(false);
  });
});
