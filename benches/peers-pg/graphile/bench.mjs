// graphile-worker on the PostgreSQL group's workloads (P1 to P5), run by benches/peers-pg (graphile.rs):
// `node bench.mjs <database url> <jobs>` prints one JSON object a line, one per workload:
// {"workload", "jobs_per_sec", "note"}. Each workload starts from an empty graphile_worker job table.
import { performance } from "node:perf_hooks";
import { Logger, makeWorkerUtils, run } from "graphile-worker";

const [url, jobs] = [process.argv[2], Number(process.argv[3])];
const quiet = new Logger(() => (level, message) => {
  if (level === "error") console.error(message);
});
const utils = await makeWorkerUtils({ connectionString: url, logger: quiet });
await utils.migrate();
const empty = () => utils.withPgClient((client) => client.query("DELETE FROM graphile_worker._private_jobs"));
const report = (workload, jobsPerSec, note) =>
  console.log(JSON.stringify({ workload, jobs_per_sec: jobsPerSec, note }));
const rate = (n, ms) => n / (ms / 1000);

/// Each job number handled once: "all handled once", or what went wrong.
const validity = (seen) => {
  const lost = seen.filter((c) => c === 0).length;
  const duplicated = seen.filter((c) => c > 1).length;
  return lost === 0 && duplicated === 0 ? "all handled once" : `INVALID: ${lost} lost, ${duplicated} duplicated`;
};

/// A runner with `concurrency` workers whose `bench` task calls `handle(payload)`.
const runner = (concurrency, handle) =>
  run({
    connectionString: url,
    concurrency,
    noHandleSignals: true,
    logger: quiet,
    taskList: { bench: async (payload) => handle(payload) },
  });

/// Waits until `done()`.
const until = async (done) => {
  while (!done()) await new Promise((resolve) => setTimeout(resolve, 1));
};

const specs = (from, to) => {
  const out = [];
  for (let i = from; i < to; i++) out.push({ identifier: "bench", payload: { i } });
  return out;
};

// P1: one job at a time.
await empty();
let start = performance.now();
for (let i = 0; i < jobs; i++) await utils.addJob("bench", { i });
report("P1 push, 1 producer", rate(jobs, performance.now() - start), "addJob");

// P2: batches of 1 000 (addJobs, one statement each).
await empty();
start = performance.now();
for (let i = 0; i < jobs; i += 1000) await utils.addJobs(specs(i, Math.min(i + 1000, jobs)));
report("P2 push_batch of 1 000", rate(jobs, performance.now() - start), "addJobs");

// P3, P4: a prefilled queue drained by one runner of 2, then 8, workers.
for (const [workload, concurrency] of [
  ["P3 drain, 2 workers", 2],
  ["P4 drain, 8 workers", 8],
]) {
  await empty();
  for (let i = 0; i < jobs; i += 1000) await utils.addJobs(specs(i, Math.min(i + 1000, jobs)));
  await utils.withPgClient((client) => client.query("VACUUM ANALYZE graphile_worker._private_jobs"));
  const seen = new Array(jobs).fill(0);
  let handled = 0;
  start = performance.now();
  const workers = await runner(concurrency, ({ i }) => {
    seen[i]++;
    handled++;
  });
  await until(() => handled >= jobs);
  const elapsed = performance.now() - start;
  await workers.stop();
  report(workload, rate(jobs, elapsed), validity(seen));
}

// P5: a steady 200 pushes a second to 2 waiting workers (LISTEN/NOTIFY); latency from the push's call to
// the handler's start.
await empty();
const steady = Math.min(Math.max(Math.floor(jobs / 10), 100), 2000);
const seen = new Array(steady).fill(0);
const latencies = [];
let handled = 0;
const workers = await runner(2, ({ i, at }) => {
  latencies.push(performance.now() - at);
  seen[i]++;
  handled++;
});
for (let i = 0; i < steady; i++) {
  const job = { i, at: 0 };
  job.at = performance.now(); // stamped as the push is sent, as the other contenders do
  await utils.addJob("bench", job);
  await new Promise((resolve) => setTimeout(resolve, 5));
}
await until(() => handled >= steady);
await workers.stop();
latencies.sort((a, b) => a - b);
const quantile = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
report(
  "P5 push to handler start, 200/s",
  200,
  `p50 ${quantile(0.5).toFixed(2)} ms, p99 ${quantile(0.99).toFixed(2)} ms over ${steady} jobs; ${validity(seen)}`,
);
await utils.release();
