// Where the API lives. The deployment writes config.json next to index.html (in AWS: the REST API URL and
// the stream Function URL); the local stack serves the committed one, whose relative URLs are same-origin.

export interface ConsoleConfig {
  /** Base of the REST API, ending in /api/v1 (absolute, or relative to the page). */
  apiBaseUrl: string;
  /** The full URL of the streaming endpoint (POST, Server-Sent Events). */
  streamUrl: string;
  /** The largest file an upload may declare (the platform's EXTRACT_MAX_BYTES), checked before asking. */
  maxUploadBytes: number;
}

// 50 MiB: the platform's default EXTRACT_MAX_BYTES. A deployment with another limit names it in config.json.
const FALLBACK: ConsoleConfig = { apiBaseUrl: "/api/v1", streamUrl: "/api/v1/query", maxUploadBytes: 50 * 1024 * 1024 };

function absolute(url: string): string {
  return new URL(url, window.location.href).toString().replace(/\/+$/, "");
}

export async function loadConfig(): Promise<ConsoleConfig> {
  let raw: Partial<ConsoleConfig> = {};
  try {
    const response = await fetch("./config.json", { cache: "no-store" });
    if (response.ok) raw = (await response.json()) as Partial<ConsoleConfig>;
  } catch {
    // No config.json (a plain static server): the same-origin defaults apply.
  }
  return {
    apiBaseUrl: absolute(typeof raw.apiBaseUrl === "string" && raw.apiBaseUrl ? raw.apiBaseUrl : FALLBACK.apiBaseUrl),
    streamUrl: absolute(typeof raw.streamUrl === "string" && raw.streamUrl ? raw.streamUrl : FALLBACK.streamUrl),
    maxUploadBytes:
      typeof raw.maxUploadBytes === "number" && Number.isInteger(raw.maxUploadBytes) && raw.maxUploadBytes > 0
        ? raw.maxUploadBytes
        : FALLBACK.maxUploadBytes,
  };
}
