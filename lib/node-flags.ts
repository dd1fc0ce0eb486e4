// The V8 flags every s3dfs service process runs with (npm start, the s3dfs bin's shebang, the
// Docker image, the storage nodes the manager spawns, the bench's and tests' servers).
//
// --initial-old-space-size=64: a process that streams object bytes keeps a small live heap (about
// 20 MB), so V8 sets its old-generation limit just above that and runs a full mark-compact every
// few MB of promoted stream objects: a 1 GiB PUT and three GETs cost about 170 of them, half the
// gateway's CPU. Starting from a 64 MB limit leaves 1 to 3 (measured: gateway CPU 25.8 → 13.2 s,
// large GET 200–240 → 290–490 MB/s, peak RSS unchanged at about 180 MB). Node refuses this flag in
// NODE_OPTIONS, so it goes on the command line.
export const nodeFlags = ['--initial-old-space-size=64'];

/** Whether this process was started with them. */
export function hasNodeFlags(): boolean {
  return nodeFlags.every((f) => process.execArgv.includes(f));
}
