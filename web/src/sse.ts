// A Server-Sent Events reader for a fetch() body. EventSource cannot POST nor send an Authorization
// header, so the stream is read by hand, following the WHATWG event-stream parsing rules: lines end in
// \n, \r\n or \r; a line starting with ":" is a comment (the server's keep-alive pings); "data" lines of
// one event are joined with \n; a blank line dispatches the event.

export interface SseEvent {
  event: string;
  data: string;
}

export class SseParser {
  private buffer = "";
  private eventName = "";
  private dataLines: string[] = [];
  private pendingCR = false;

  /** Feeds decoded text; returns the events completed by it. */
  push(text: string): SseEvent[] {
    const out: SseEvent[] = [];
    let chunk = text;
    if (this.pendingCR && chunk.startsWith("\n")) chunk = chunk.slice(1); // the \n of a \r\n split in two
    this.pendingCR = false;
    this.buffer += chunk;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const ch = this.buffer[i];
      if (ch !== "\n" && ch !== "\r") continue;
      this.line(this.buffer.slice(start, i), out);
      if (ch === "\r") {
        if (i + 1 < this.buffer.length) {
          if (this.buffer[i + 1] === "\n") i++;
        } else {
          this.pendingCR = true;
        }
      }
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === "") {
      if (this.dataLines.length > 0) {
        out.push({ event: this.eventName || "message", data: this.dataLines.join("\n") });
      }
      this.eventName = "";
      this.dataLines = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.eventName = value;
    else if (field === "data") this.dataLines.push(value);
    // "id" and "retry" mean nothing to a POST that is never reconnected.
  }
}

/** Yields each event of a streamed response body as soon as its blank line arrives. */
export async function* readSse(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  const parser = new SseParser();
  const cancel = () => void reader.cancel().catch(() => undefined);
  signal?.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const event of parser.push(decoder.decode(value, { stream: true }))) yield event;
    }
    // An event cut off without its blank line is discarded, as the format says.
  } finally {
    signal?.removeEventListener("abort", cancel);
    reader.releaseLock();
  }
}
