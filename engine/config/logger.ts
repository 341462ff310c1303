/**
 * The default logger of every process: pino JSON lines on stderr, level from
 * POSTERN_LOG_LEVEL. Lines are buffered and written in batches (a write per line cost the
 * engine ~25 us of CPU per request with its access log on), and flushed when the process exits.
 */
import pino, { type Logger } from "pino";

let destination: ReturnType<typeof pino.destination> | undefined;

export function processLogger(name: string): Logger {
  if (!destination) {
    const dest = pino.destination({ dest: 2, sync: false, minLength: 4096 });
    destination = dest;
    process.once("exit", () => dest.flushSync());
    // A quiet process still shows its lines within a second.
    setInterval(() => dest.flush(), 1000).unref();
  }
  return pino({ name, level: process.env.POSTERN_LOG_LEVEL ?? "info" }, destination);
}
