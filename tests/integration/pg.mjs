// A throwaway PostgreSQL server for the ledger's end-to-end tests, through tests/pg/start.sh and
// tests/pg/stop.sh, and psql to read what Switchboard wrote. Starting fails (it does not skip)
// when no server can be started: CI installs PostgreSQL with scripts/deps.sh.
//
//   const pg = await startPostgres()
//     pg.url, pg.port, pg.password     postgres://switchboard:PASSWORD@127.0.0.1:PORT/switchboard
//     await pg.query(sql)              rows as arrays of strings (null for NULL)
//     await pg.pause() / pg.resume()   stops the server keeping its data / starts it again
//     await pg.stop()                  stops it and deletes its folder (safe to call twice)

import { execFile } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from './harness.mjs';

const SCRIPTS = path.join(REPO_ROOT, 'tests', 'pg');
/* psql's field and record separators, and its NULL: bytes that no test value holds. */
const FS = '\x1f';
const RS = '\x1e';
const NULL = '\x1d';

function run(file, args) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: REPO_ROOT, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) {
        err.message = `${path.basename(file)} ${args.join(' ')}: ${stderr || err.message}`;
        reject(err);
      } else {
        resolve(stdout);
      }
    });
  });
}

function parseEnv(text) {
  const env = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
  }
  return env;
}

export async function startPostgres() {
  let env;
  try {
    env = parseEnv(await run(path.join(SCRIPTS, 'start.sh'), []));
  } catch (err) {
    throw new Error(
      `PostgreSQL could not be started for the ledger tests (Debian's postgresql package is ` +
        `needed; scripts/deps.sh installs it): ${err.message}`,
    );
  }
  let stopped = false;
  return {
    url: env.url,
    port: Number(env.port),
    password: env.password,
    async query(sql) {
      const out = await run(env.psql, [
        '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
        '-F', FS, '-R', RS, '-P', `null=${NULL}`,
        '-d', env.url, '-c', sql,
      ]);
      return out
        .replace(/\n$/, '')
        .split(RS)
        .filter((r) => r.length > 0)
        .map((r) => r.split(FS).map((v) => (v === NULL ? null : v)));
    },
    async pause() {
      await run(path.join(SCRIPTS, 'stop.sh'), [env.dir, '--keep']);
    },
    async resume() {
      await run(path.join(SCRIPTS, 'start.sh'), [env.dir]);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await run(path.join(SCRIPTS, 'stop.sh'), [env.dir]);
    },
  };
}
