// Protocol framing (docs/host-protocol.md, "Transport and framing"): a 4-byte big-endian
// length, then that many bytes of UTF-8 JSON holding one object with a `t` field.

export const MAX_INBOUND = 96 * 1024 * 1024; // worker → host (a load carries a bundle)
export const MAX_OUTBOUND = 4 * 1024 * 1024; // host → worker

export type Message = { t: string } & Record<string, any>;

export class FrameError extends Error {
  override name = "FrameError";
}

export function encodeFrame(message: Message): Buffer {
  const body = Buffer.from(JSON.stringify(message), "utf8");
  if (body.length > MAX_OUTBOUND) {
    throw new FrameError(`a ${message.t} frame of ${body.length} bytes is over ${MAX_OUTBOUND}`);
  }
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/** Bytes in, messages out; throws FrameError on an oversized or malformed frame. */
export class FrameDecoder {
  #chunks: Buffer[] = [];
  #buffered = 0;

  constructor(readonly limit: number = MAX_INBOUND) {}

  feed(chunk: Buffer): Message[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const out: Message[] = [];
    while (this.#buffered >= 4) {
      const buffer = this.#flatten();
      const size = buffer.readUInt32BE(0);
      if (size > this.limit) throw new FrameError(`a frame of ${size} bytes is over ${this.limit}`);
      if (buffer.length < 4 + size) break;
      out.push(parse(buffer.subarray(4, 4 + size)));
      const rest = buffer.subarray(4 + size);
      this.#chunks = rest.length ? [rest] : [];
      this.#buffered = rest.length;
    }
    return out;
  }

  #flatten(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0]!;
  }
}

function parse(body: Buffer): Message {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new FrameError(`a frame is not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new FrameError("a frame is not a JSON object");
  }
  if (typeof (value as any).t !== "string") throw new FrameError("a frame has no `t`");
  return value as Message;
}
