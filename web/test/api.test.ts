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
