import { Bench } from "tinybench";
import { FrameType } from "../../engine/protocol/constants.js";
import { FrameDecoder, FrameWriter } from "../../engine/protocol/frame.js";
import { decodeRequestHead, encodeRequestHead } from "../../engine/protocol/heads.js";
import { printTable, type Row } from "../report.js";

/** Frame encode/decode: small control-sized frames (ops/s), 64 KiB DATA (MB/s), request heads. */
export async function runCodecBench(): Promise<string> {
  const head = {
    method: "GET",
    target: "/api/orders?page=2",
    headers: ["host", "orders.corp.local", "user-agent", "Mozilla/5.0", "accept", "application/json", "x-forwarded-for", "203.0.113.9"],
    ext: { app: "orders", tenant: "t1", requestId: "4b8f0c1e-7d2a-4c59-9e0b-1f6a2d3c4e5f", timeoutMs: 85_000, body: false },
  };
  const headBytes = encodeRequestHead(head);
  const big = Buffer.alloc(64 * 1024, 1);
  const small = Buffer.alloc(64, 1);
  const limits = { maxFrameSize: 64 * 1024, maxHeaderBlock: 32 * 1024 };
  let sink = 0;
  const decoder = new FrameDecoder(limits, (_t, _f, _id, p) => (sink += p.length));

  const batch = (() => {
    const w = new FrameWriter();
    for (let i = 0; i < 100; i++) w.frame(FrameType.DATA, 0, 1 + 2 * i, small);
    return w.take();
  })();
  const bigFrame = (() => {
    const w = new FrameWriter();
    w.frame(FrameType.DATA, 0, 1, big);
    return w.take();
  })();

  const bench = new Bench({ time: 700 });
  bench
    .add("encode 100 x 64 B DATA", () => {
      const w = new FrameWriter();
      for (let i = 0; i < 100; i++) w.frame(FrameType.DATA, 0, 1 + 2 * i, small);
      sink += w.take().length;
    })
    .add("decode 100 x 64 B DATA", () => decoder.push(batch))
    .add("encode 64 KiB DATA", () => {
      const w = new FrameWriter();
      w.frame(FrameType.DATA, 0, 1, big);
      sink += w.take().length;
    })
    .add("decode 64 KiB DATA", () => decoder.push(bigFrame))
    .add("encode request head", () => (sink += encodeRequestHead(head).length))
    .add("decode request head", () => (sink += decodeRequestHead(headBytes).headers.length));
  await bench.run();
  const hz = (name: string): number => {
    const r = bench.getTask(name)?.result;
    if (r === undefined || !("throughput" in r)) throw new Error(`benchmark ${name} did not complete`);
    return r.throughput.p50;
  };
  const rows: Row[] = [
    { name: "encode 64 B frames", value: hz("encode 100 x 64 B DATA") * 100, unit: "frames/s" },
    { name: "decode 64 B frames", value: hz("decode 100 x 64 B DATA") * 100, unit: "frames/s" },
    { name: "encode 64 KiB DATA", value: (hz("encode 64 KiB DATA") * big.length) / 1e6, unit: "MB/s" },
    { name: "decode 64 KiB DATA", value: (hz("decode 64 KiB DATA") * big.length) / 1e6, unit: "MB/s" },
    { name: "encode request head (msgpack)", value: hz("encode request head"), unit: "heads/s" },
    { name: "decode + validate request head", value: hz("decode request head"), unit: "heads/s" },
  ];
  if (sink < 0) throw new Error("unreachable");
  return printTable("Frame codec (tinybench, median of samples)", rows);
}
