// The chat keeps the wire contract, from a Node team's own test suite:
// `node --test` starts the server, runs `harness check --format json`, and
// fails with the broken clauses and the line that runs the check again.
// `harness` is on PATH from the wheel (pipx install socketio-presence-harness)
// or from `cargo install`; CHAT_SERVER is the command that starts your server
// and prints "listening on http://HOST:PORT" (here: interop/node_server.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const server = (process.env.CHAT_SERVER ??
  `node ${here}../../interop/node_server.mjs --port 0 --ping-interval 1 --ping-timeout 1 --ack-timeout 1`).split(' ');

test('the chat keeps the contract', async (t) => {
  const child = spawn(server[0], server.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  let out = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no "listening on" within 10 s')), 10_000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const found = out.match(/listening on (http:\/\/[0-9.:]+)/);
      if (found) { clearTimeout(timer); resolve(found[1]); }
    });
    child.on('exit', (code) => reject(new Error(`the server exited (${code})`)));
  });
  const { stdout } = await promisify(execFile)('harness', ['check', url, '--level', 'core', '--format', 'json'], {
    maxBuffer: 64 << 20,
  }).catch((e) => (e.code === 1 ? e : Promise.reject(e))); // exit 1: clauses failed
  const report = JSON.parse(stdout);
  const failed = report.clauses.filter((c) => c.verdict === 'FAIL');
  assert.deepEqual(
    failed.map((c) => `${c.clause}: ${c.findings[0]?.message ?? c.statement}`),
    [],
    `again: ${report.rerun}`,
  );
});
