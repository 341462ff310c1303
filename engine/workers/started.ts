/** For task modules: tells the engine thread a task is running (see WorkerPool's watchdog). */
import { workerData } from "piscina";

const shared = (workerData as { clock?: SharedArrayBuffer } | undefined)?.clock;
const clock = shared ? new Float64Array(shared) : undefined;

export function markStarted(task: { readonly slot: number }): void {
  if (clock) clock[task.slot] = Date.now();
}
