import { describe, expect, it } from "vitest";
import { ApiError, errorFrom } from "../src/api";

describe("errorFrom", () => {
  it("reads the platform's error body and Retry-After", async () => {
    const response = new Response(JSON.stringify({ error: { code: "rate_limited", message: "too many sign-in attempts" } }), {
      status: 429,
      headers: { "Retry-After": "30" },
    });
    const error = await errorFrom(response);
    expect(error).toBeInstanceOf(ApiError);
    expect([error.status, error.code, error.message, error.retryAfterSeconds]).toEqual([429, "rate_limited", "too many sign-in attempts", 30]);
    expect(error.describe()).toBe("too many sign-in attempts. Too many attempts. Retry in 30 s.");
  });

  it("describes a body that is not the error body by its status", async () => {
    const error = await errorFrom(new Response("<html>Bad gateway</html>", { status: 502, statusText: "Bad Gateway" }));
    expect(error.code).toBe("http_502");
    expect(error.describe()).toBe("The server answered HTTP 502 Bad Gateway. The server failed; try again in a moment.");
  });

  it("adds the hint of a known code", async () => {
    const error = await errorFrom(new Response(JSON.stringify({ error: { code: "forbidden", message: "admin role required" } }), { status: 403 }));
    expect(error.describe()).toBe("admin role required. Only an administrator of the organisation can do this.");
  });
});

describe("hints of the conversations and API keys errors", () => {
  const body = (code: string, message: string) => JSON.stringify({ error: { code, message } });

  it("says to start a new conversation when one is full", async () => {
    const error = await errorFrom(new Response(body("conversation_full", "the conversation holds 500 turns, the most it can; start a new one"), { status: 409 }));
    expect(error.describe()).toBe("the conversation holds 500 turns, the most it can; start a new one. Start a new conversation to go on.");
  });

  it("says to revoke a key when the organisation holds the most", async () => {
    const error = await errorFrom(new Response(body("too_many_api_keys", "the organisation holds 100 API keys, the most allowed; revoke one first"), { status: 409 }));
    expect(error.describe()).toContain("Revoke a key that is no longer used");
  });

  it("does not blame the role when an API key is refused", async () => {
    const conversations = await errorFrom(
      new Response(body("forbidden", "conversations belong to a signed-in user; an API key cannot hold them"), { status: 403 }),
    );
    expect(conversations.describe()).toBe(
      "conversations belong to a signed-in user; an API key cannot hold them. Conversations belong to a signed-in person: sign in with an account to use them.",
    );
    const scope = await errorFrom(new Response(body("forbidden", "an API key of scope 'query' does not allow this action"), { status: 403 }));
    expect(scope.describe()).toContain("Use a key with a wider scope");
    expect(scope.describe()).not.toContain("administrator");
  });
});

describe("hints of the upload refusals", () => {
  const body = (code: string, message: string) => JSON.stringify({ error: { code, message } });

  it("says what to do when the organisation's storage is full", async () => {
    const error = await errorFrom(
      new Response(body("storage_quota_exceeded", "the document's 2048 bytes would take the organisation's stored content from 1000 bytes over its quota of 2000 bytes"), { status: 413 }),
    );
    expect(error.describe()).toBe(
      "the document's 2048 bytes would take the organisation's stored content from 1000 bytes over its quota of 2000 bytes. Delete documents that are no longer needed, or ask the operator for a larger quota.",
    );
  });

  it("adds nothing to a document quota message that already says what to do", async () => {
    const message = "the organisation holds 10 documents, the most its quota allows (10); delete some or ask the operator for a larger quota";
    const error = await errorFrom(new Response(body("document_quota_exceeded", message), { status: 409 }));
    expect(error.describe()).toBe(`${message}.`);
  });

  it("suggests splitting a file over the byte limit, and names the role a 403 needs", async () => {
    const large = await errorFrom(new Response(body("payload_too_large", "the file is 60000000 bytes; the limit is 52428800"), { status: 413 }));
    expect(large.describe()).toBe("the file is 60000000 bytes; the limit is 52428800. Split it into smaller documents.");
    const role = await errorFrom(new Response(body("forbidden", "this action needs the admin role"), { status: 403 }));
    expect(role.describe()).toBe("this action needs the admin role. Only an administrator of the organisation can do this.");
  });
});
