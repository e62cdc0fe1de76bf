import { describe, expect, it } from "vitest";
import { readSse, SseParser } from "../src/sse";

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
}

async function collect(chunks: string[]) {
  const out = [];
  for await (const event of readSse(streamOf(chunks))) out.push(event);
  return out;
}

describe("SseParser", () => {
  it("reads the platform's frames: event line, JSON data line, blank line", () => {
    const parser = new SseParser();
    const events = parser.push(
      'event: sources\ndata: {"sources": []}\n\nevent: token\ndata: {"text": "Hi"}\n\nevent: done\ndata: {"usage": {}}\n\n',
    );
    expect(events).toEqual([
      { event: "sources", data: '{"sources": []}' },
      { event: "token", data: '{"text": "Hi"}' },
      { event: "done", data: '{"usage": {}}' },
    ]);
  });

  it("accepts \\r\\n and \\r line ends, even split between chunks", () => {
    const parser = new SseParser();
    expect(parser.push("event: token\r")).toEqual([]);
    expect(parser.push("\ndata: 1\r")).toEqual([]);
    expect(parser.push("\n\r")).toEqual([{ event: "token", data: "1" }]);
    expect(parser.push("\ndata: 2\r\r")).toEqual([{ event: "message", data: "2" }]);
  });

  it("ignores comments (keep-alive pings), joins data lines, keeps a space after the first", () => {
    const parser = new SseParser();
    expect(parser.push(": ping\n\ndata:a\ndata:  b\nid: 7\nretry: 10\n\n")).toEqual([{ event: "message", data: "a\n b" }]);
  });

  it("dispatches nothing for an event without data", () => {
    expect(new SseParser().push("event: token\n\n")).toEqual([]);
  });
});

describe("readSse", () => {
  it("yields each event as its blank line arrives, across arbitrary chunk boundaries", async () => {
    const text = 'event: token\ndata: {"text": "été "}\n\nevent: token\ndata: {"text": "[1]"}\n\n';
    const bytes = new TextEncoder().encode(text);
    // Split inside a multi-byte character too: the decoder must keep the partial sequence.
    const chunks = [bytes.slice(0, 27), bytes.slice(27, 28), bytes.slice(28)];
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk);
        controller.close();
      },
    });
    const events = [];
    for await (const event of readSse(stream)) events.push(event);
    expect(events.map((e) => JSON.parse(e.data).text)).toEqual(["été ", "[1]"]);
  });

  it("drops an event cut off without its blank line", async () => {
    expect(await collect(["event: done\ndata: {}\n\n", "event: token\ndata: {\"text\": \"x\"}\n"])).toEqual([
      { event: "done", data: "{}" },
    ]);
  });
});
