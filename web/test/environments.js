// What load() does in the places it runs: the onnxruntime module it is given (onnxruntime-web's own, a
// native binding such as onnxruntime-node), a runtime that withholds the file or lacks global crypto, and
// TypeScript's older module resolution. unit.test.js runs these (npm test, make web-test).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { load, ModelFileError, NextwordError } from '../src/index.js';
import { importOrt } from '../src/ort.js';
import { SeedSequence } from '../src/random.js';
import { unreadable } from '../src/source.js';

const BUNDLED = fileURLToPath(new URL('../../runtime/data/nextword-patents.onnx', import.meta.url));
const WEB = fileURLToPath(new URL('..', import.meta.url));
const INDEX = new URL('../src/index.js', import.meta.url).href;

/** The error `promise` rejects with (the test fails where it resolves). */
export async function refusal(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected an error');
}

/** A stand-in onnxruntime module that records what each session is created with, then fails it. */
function recordingOrt(versions, wasm = {}) {
  const seen = [];
  const ort = {
    env: { versions, wasm },
    InferenceSession: {
      create: async (_bytes, options) => {
        seen.push({ options, numThreads: wasm.numThreads });
        throw new Error('recorded');
      },
    },
  };
  return { ort, seen };
}

/** Run `code` (an ES module) in a fresh Node with `flags`; its stdout and stderr. */
function node(code, flags = []) {
  const result = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', code], {
    cwd: WEB,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return `${result.stdout}${result.stderr}`;
}

/** Declare these tests (in the file that runs them). */
export function environmentTests() {
  describe('threads, whichever onnxruntime runs the model', () => {
    test('a native binding (onnxruntime-node) runs numThreads threads, 1 by default', async () => {
      // it used one thread per core: an int8 file's batches of 5+ rows gave texts that differed by machine
      const bytes = new Uint8Array(await readFile(BUNDLED));
      const { ort, seen } = recordingOrt({ common: '1.30.0', node: '1.30.0' });
      await refusal(load(bytes, { ort }));
      await refusal(load(bytes, { ort, numThreads: 4 })); // native threads work under Node: not refused
      await refusal(load(bytes, { ort, numThreads: 4, sessionOptions: { intraOpNumThreads: 2 } }));
      assert.deepEqual(
        seen.map((s) => s.options.intraOpNumThreads),
        [1, 4, 2],
      );
      assert.equal(seen[0].options.graphOptimizationLevel, 'all');
      assert.equal(ort.env.wasm.numThreads, undefined); // onnxruntime-common's env.wasm: not onnxruntime-web's
    });

    test("onnxruntime-web given as ort gets numThreads when it has none, keeps an app's own", async () => {
      const bytes = new Uint8Array(await readFile(BUNDLED));
      const unset = recordingOrt({ common: '1.30.0', web: '1.30.0' });
      await refusal(load(bytes, { ort: unset.ort }));
      assert.equal(unset.seen[0].numThreads, 1);
      assert.equal(unset.seen[0].options.intraOpNumThreads, undefined);
      const auto = recordingOrt({ common: '1.30.0', web: '1.30.0' }, { numThreads: 0 }); // "work it out"
      await refusal(load(bytes, { ort: auto.ort }));
      assert.equal(auto.seen[0].numThreads, 1); // under Node, where working it out fails
      const own = recordingOrt({ common: '1.30.0', web: '1.30.0' }, { numThreads: 3 });
      await refusal(load(bytes, { ort: own.ort }));
      assert.equal(own.seen[0].numThreads, 3);
      const refused = await refusal(load(bytes, { ort: own.ort, numThreads: 2 }));
      assert.match(refused.message, /^numThreads above 1 needs a browser .*pass onnxruntime-node as ort/);
    });

    test("onnxruntime-web's own module given as ort loads under Node", () => {
      // left unset, its thread count was worked out with require('node:os'), which its ES module build
      // cannot call: "Dynamic require of "node:os" is not supported", blamed on the .wasm
      const out = node(
        `import { load } from ${JSON.stringify(INDEX)};
         const ort = await import('onnxruntime-web/wasm');
         const model = await load(${JSON.stringify(BUNDLED)}, { ort });
         const text = await model.generate('a', { maxWords: 2, temperature: 0 });
         console.log('threads', ort.env.wasm.numThreads, JSON.stringify(text));`,
      );
      assert.match(out, /^threads 1 " \w/m, out);
    });

    test("a backend that cannot require() Node's modules is not blamed on the .wasm", async () => {
      const message =
        'no available backend found. ERR: [wasm] Error: Dynamic require of "node:os" is not supported';
      const ort = {
        env: { versions: { web: '1.30.0' }, wasm: { numThreads: 0 } },
        InferenceSession: {
          create: async () => {
            throw new Error(message);
          },
        },
      };
      const error = await refusal(load(new Uint8Array(await readFile(BUNDLED)), { ort }));
      assert.ok(error instanceof NextwordError && !(error instanceof ModelFileError), String(error));
      assert.ok(!error.message.includes('.wasm is served'), error.message);
      assert.match(error.message, /Dynamic require of "node:os".*set ort\.env\.wasm\.numThreads to 1/);
    });
  });

  describe('a model file the runtime does not let us read', () => {
    test('is said to be unreadable, why, and how to grant it; "does not exist" only when it does not', () => {
      const coded = (code, message, name = 'Error') => Object.assign(new Error(message), { code, name });
      assert.equal(
        unreadable('m.onnx', coded('ENOENT', "ENOENT: no such file or directory, stat 'm.onnx'")),
        'model file m.onnx does not exist (or cannot be read)',
      );
      assert.match(
        unreadable('m.onnx', coded('ENOTDIR', "ENOTDIR: not a directory, stat 'm.onnx'")),
        /does not exist/,
      );
      assert.equal(
        unreadable('m.onnx', coded('EACCES', "EACCES: permission denied, stat 'm.onnx'")),
        'model file m.onnx cannot be read: permission denied',
      );
      const deno = coded(
        undefined,
        'Requires read access to "m.onnx", run again with the --allow-read flag',
        'NotCapable',
      );
      assert.equal(
        unreadable('m.onnx', deno),
        'model file m.onnx cannot be read: Requires read access to "m.onnx", run again with the ' +
          '--allow-read flag',
      );
      assert.match(
        unreadable('m.onnx', coded(undefined, 'Requires read access', 'NotCapable')),
        /cannot be read: Requires read access \(NotCapable\): grant read permission/,
      );
    });

    test("under Node's permission model (ERR_ACCESS_DENIED)", () => {
      const flag = process.allowedNodeEnvironmentFlags.has('--permission')
        ? '--permission'
        : '--experimental-permission';
      const out = node(
        `import { load } from ${JSON.stringify(INDEX)};
         try { await load(${JSON.stringify(BUNDLED)}); } catch (error) { console.log(error.name, error.message); }`,
        [flag, `--allow-fs-read=${join(WEB, 'src')}`, '--no-warnings'],
      );
      assert.match(
        out,
        /^ModelFileError model file .+ cannot be read: .*\(ERR_ACCESS_DENIED\).*--allow-fs-read/m,
        out,
      );
      assert.doesNotMatch(out, /does not exist/);
    });
  });

  describe('a generation without a seed', () => {
    test('where there is no global crypto (Node 18) says to use Node 20 or later', () => {
      const saved = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
      Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true });
      try {
        assert.throws(
          () => new SeedSequence(null),
          (error) => error instanceof NextwordError && /Node 20 or later, or give a seed/.test(error.message),
        );
      } finally {
        Object.defineProperty(globalThis, 'crypto', saved);
      }
      assert.equal(new SeedSequence(null).pool.length, 4); // and draws where there is one
    });
  });

  describe('an onnxruntime-web that cannot be imported', () => {
    test('is said to be missing only when it is', async () => {
      const failing = (error) => () => Promise.reject(error);
      const missing = Object.assign(new Error("Cannot find package 'onnxruntime-web' imported from x.js"), {
        code: 'ERR_MODULE_NOT_FOUND',
      });
      const notFound = await refusal(importOrt(failing(missing)));
      assert.ok(notFound instanceof NextwordError);
      assert.match(notFound.message, /Cannot find package .*; install it beside nextword-web/);
      const unmapped = new TypeError(
        'Failed to resolve module specifier "onnxruntime-web/wasm". Relative references must start with ' +
          'either "/", "./", or "../".',
      );
      const page = await refusal(importOrt(failing(unmapped)));
      assert.doesNotMatch(page.message, /install it/);
      assert.match(page.message, /maps "onnxruntime-web\/wasm" to its ort\.wasm\.min\.mjs in an import map/);
      const broken = await refusal(importOrt(failing(new SyntaxError('Unexpected token in ort.mjs'))));
      assert.equal(broken.message, 'onnxruntime-web could not be imported: Unexpected token in ort.mjs');
    });
  });

  describe('TypeScript with moduleResolution node10', () => {
    test('finds the types of nextword-web and nextword-web/client (typesVersions)', async () => {
      // node10 reads no "exports": "nextword-web/client" was a module without types (TS2307)
      const app = await mkdtemp(join(tmpdir(), 'nextword-node10-'));
      try {
        await mkdir(join(app, 'node_modules'));
        await symlink(WEB, join(app, 'node_modules', 'nextword-web'), 'dir');
        await writeFile(
          join(app, 'app.ts'),
          "import { load } from 'nextword-web';\nimport { WorkerModel } from 'nextword-web/client';\n" +
            'export const used: [typeof load, typeof WorkerModel] = [load, WorkerModel];\n',
        );
        const compilerOptions = {
          strict: true,
          noEmit: true,
          module: 'commonjs',
          moduleResolution: 'node10',
          target: 'es2022',
          lib: ['es2022', 'dom'],
          types: [],
        };
        await writeFile(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['app.ts'] }));
        const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
        const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], {
          cwd: app,
          encoding: 'utf8',
        });
        assert.equal(result.status, 0, result.stdout + result.stderr);
      } finally {
        await rm(app, { recursive: true });
      }
    });
  });
}
