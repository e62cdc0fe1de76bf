// File uploads: what the console decides before asking the API (the file's type, its size) and the PUT of
// the bytes to the presigned URL the API hands out, with progress (fetch reports none for uploads, so the
// PUT goes through XMLHttpRequest).

import { ApiError } from "./api";

/** The media types the platform extracts text from (ragcore.extractors SUPPORTED_CONTENT_TYPES). */
export const DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
export const SUPPORTED_TYPES: readonly string[] = ["text/plain", "text/markdown", "text/html", "application/pdf", DOCX_TYPE];

// Browsers leave File.type empty for extensions the operating system does not know (.md on most Linux
// desktops) and name some types their own way: the extension decides then.
const BY_EXTENSION: Record<string, string> = {
  txt: "text/plain",
  text: "text/plain",
  md: "text/markdown",
  markdown: "text/markdown",
  html: "text/html",
  htm: "text/html",
  pdf: "application/pdf",
  docx: DOCX_TYPE,
};

/**
 * The content type to declare for a file: the browser's type when the platform supports it, else the one
 * its extension names. Anything else is declared as the browser saw it (or application/octet-stream), so
 * that the API's refusal (422, with the supported types) is what the person reads.
 */
export function contentTypeOf(file: { name: string; type: string }): { type: string; supported: boolean } {
  const browser = file.type.split(";")[0].trim().toLowerCase();
  if (SUPPORTED_TYPES.includes(browser)) return { type: browser, supported: true };
  const dot = file.name.lastIndexOf(".");
  const extension = dot > 0 ? file.name.slice(dot + 1).toLowerCase() : "";
  const byExtension = BY_EXTENSION[extension];
  if (byExtension) return { type: byExtension, supported: true };
  return { type: browser || "application/octet-stream", supported: false };
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

/** Why a file is refused before anything is sent, or null: empty, or over the limit. */
export function sizeProblem(size: number, limit: number): string | null {
  if (size === 0) return "The file is empty.";
  if (size > limit) return `The file is ${formatBytes(size)}; the limit is ${formatBytes(limit)}.`;
  return null;
}

/** The presigned request of POST /documents/uploads. */
export interface UploadTarget {
  method: string;
  url: string;
  headers: Record<string, string>;
  expires_at: string;
}

/** S3's error body (XML: <Error><Code>…</Code><Message>…</Message></Error>) as an ApiError. */
export function storageError(status: number, body: string): ApiError {
  const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1];
  if (code === "AccessDenied" && /expired/i.test(message ?? "")) {
    return new ApiError(status, "upload_expired", "The upload link expired before the file was sent; add the file again");
  }
  const what = code ? `${code}${message ? `: ${message}` : ""}` : `HTTP ${status}`;
  return new ApiError(status, "upload_failed", `The storage refused the file (${what})`);
}

/**
 * PUTs `file` to the presigned URL with exactly the signed headers; `progress` gets (sent, total) as the
 * bytes leave. Resolves when the storage answered 2xx; rejects with an ApiError otherwise, or an
 * AbortError when `signal` aborts.
 */
export function putFile(
  target: UploadTarget,
  file: Blob,
  progress: (sent: number, total: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(target.method || "PUT", target.url);
    // Content-Length is the browser's to send (it is a forbidden header name); the rest are signed.
    for (const [name, value] of Object.entries(target.headers)) {
      if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value);
    }
    xhr.upload.addEventListener("progress", (event) => progress(event.loaded, event.lengthComputable ? event.total : file.size));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        progress(file.size, file.size);
        resolve();
      } else {
        reject(storageError(xhr.status, xhr.responseText));
      }
    });
    xhr.addEventListener("error", () =>
      reject(new ApiError(0, "network_error", "The file could not be sent to the storage (no answer, or its CORS rules refuse this page)")),
    );
    xhr.addEventListener("abort", () => reject(new DOMException("The upload was cancelled", "AbortError")));
    if (signal) {
      if (signal.aborted) {
        reject(new DOMException("The upload was cancelled", "AbortError"));
        return;
      }
      signal.addEventListener("abort", () => xhr.abort(), { once: true });
    }
    xhr.send(file);
  });
}
