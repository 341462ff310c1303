/** For task modules: tells the engine thread the task is running (see WorkerPool.run's deadline). */
export function markStarted(task: { readonly started: Float64Array }): void {
  task.started[0] = Date.now();
}
