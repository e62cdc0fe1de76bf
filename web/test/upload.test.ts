import { describe, expect, it } from "vitest";
import { ApiError } from "../src/api";
import { contentTypeOf, DOCX_TYPE, formatBytes, sizeProblem, storageError } from "../src/upload";

describe("contentTypeOf", () => {
  it("takes the browser's type when the platform supports it", () => {
    expect(contentTypeOf({ name: "manual.bin", type: "application/pdf" })).toEqual({ type: "application/pdf", supported: true });
    expect(contentTypeOf({ name: "a.html", type: "text/html; charset=utf-8" })).toEqual({ type: "text/html", supported: true });
  });

  it("falls back on the extension when the browser gives no type, or one of its own", () => {
    expect(contentTypeOf({ name: "notes.md", type: "" })).toEqual({ type: "text/markdown", supported: true });
    expect(contentTypeOf({ name: "NOTES.MARKDOWN", type: "text/x-markdown" })).toEqual({ type: "text/markdown", supported: true });
    expect(contentTypeOf({ name: "guide.docx", type: "" })).toEqual({ type: DOCX_TYPE, supported: true });
    expect(contentTypeOf({ name: "page.htm", type: "" })).toEqual({ type: "text/html", supported: true });
  });

  it("declares anything else as it is, for the API to refuse with its message", () => {
    expect(contentTypeOf({ name: "photo.png", type: "image/png" })).toEqual({ type: "image/png", supported: false });
    expect(contentTypeOf({ name: "archive", type: "" })).toEqual({ type: "application/octet-stream", supported: false });
    // A leading dot is a hidden file's name, not an extension.
    expect(contentTypeOf({ name: ".pdf", type: "" }).supported).toBe(false);
  });
});

describe("sizeProblem", () => {
  const limit = 50 * 1024 * 1024;
  it("accepts a file up to the limit, inclusive", () => {
    expect(sizeProblem(1, limit)).toBeNull();
    expect(sizeProblem(limit, limit)).toBeNull();
  });
  it("refuses an empty file and one over the limit, saying both sizes", () => {
    expect(sizeProblem(0, limit)).toBe("The file is empty.");
    expect(sizeProblem(limit + 1, limit)).toBe("The file is 50 MB; the limit is 50 MB.");
    expect(sizeProblem(80 * 1024 * 1024, limit)).toBe("The file is 80 MB; the limit is 50 MB.");
  });
  it("formats sizes for people", () => {
    expect([formatBytes(512), formatBytes(1536), formatBytes(5 * 1024 * 1024), formatBytes(3 * 1024 ** 3)]).toEqual([
      "512 B",
      "1.5 KB",
      "5.0 MB",
      "3.0 GB",
    ]);
  });
});

describe("storageError", () => {
  it("reads S3's XML error body", () => {
    const error = storageError(
      403,
      '<?xml version="1.0"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>',
    );
    expect(error).toBeInstanceOf(ApiError);
    expect(error.code).toBe("upload_failed");
    expect(error.describe()).toBe("The storage refused the file (SignatureDoesNotMatch: The request signature we calculated does not match).");
  });
  it("says an expired link expired", () => {
    const error = storageError(403, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>");
    expect(error.code).toBe("upload_expired");
    expect(error.describe()).toBe("The upload link expired before the file was sent; add the file again.");
  });
  it("describes a body that is not S3's by its status", () => {
    expect(storageError(502, "<html>bad gateway</html>").message).toBe("The storage refused the file (HTTP 502)");
  });
});
