// What only the JavaScript side has: loading from paths, bytes and URLs, the Web Worker client, and the
// messages of options given in JavaScript. Runs without the Python reference (npm test).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { BeamSearch } from '../src/beam.js';
import { cacheFromMetadata, ContinuousCache, logaddexp, unitLength } from '../src/cache.js';
import { WorkerModel, withoutSizeCaps as clientUncapped } from '../src/client.js';
import { asInText, Generation, stopForms, TextBuilder } from '../src/decoding.js';
import { changes, DEFAULTS, FILE_DEFAULTS, optionsFromMetadata, resolveOptions } from '../src/generation.js';
import {
  DEFAULT_LIMITS,
  GENERATION_DEFAULTS,
  load,
  ModelFileError,
  NextwordError,
  SIZE_CAPS,
  withoutSizeCaps,
} from '../src/index.js';
import { Dim, Value } from '../src/dims.js';
import { lstmWeights } from '../src/lstm-shapes.js';
import { parsePyJson } from '../src/pyjson.js';
import { perplexity } from '../src/scoring.js';
import { glued } from '../src/spacing.js';
import { engineNormalizesThisVersion } from '../src/unicode.js';
import { normalize, READABLE_VERSIONS, Tokenizer } from '../src/tokenizer.js';
import { serve } from '../src/worker-core.js';
import { environmentTests, refusal } from './environments.js';

const BUNDLED = fileURLToPath(new URL('../../runtime/data/nextword-patents.onnx', import.meta.url));
let model;
let bytes;

before(async () => {
  bytes = new Uint8Array(await readFile(BUNDLED));
  model = await load(BUNDLED);
});
after(() => model?.release());

/** `data`, a model file, with metadata `key` set to `value` (the old entry renamed, a new one appended). */
function withMetadata(data, key, value) {
  const encoder = new TextEncoder();
  const needle = [0x0a, key.length, ...encoder.encode(key)]; // field 1 (key) of a metadata entry
  const at = data.findIndex((_, i) => needle.every((byte, k) => data[i + k] === byte));
  const varint = (n) => (n < 128 ? [n] : [(n & 127) | 128, ...varint(n >>> 7)]);
  const field = (number, payload) => [...varint((number << 3) | 2), ...varint(payload.length), ...payload];
  const entry = field(14, [...field(1, encoder.encode(key)), ...field(2, encoder.encode(value))]);
  const out = new Uint8Array(data.length + entry.length);
  out.set(data);
  out.set(entry, data.length);
  if (at >= 0) out[at + needle.length - 1] ^= 1; // 'nextword.quality' -> 'nextword.qualitx', ignored
  return out;
}

describe('load()', () => {
  test("JSON metadata nested past 32 levels is refused in Python's words", async () => {
    const nested = (depth) => `{"a": ${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
    for (const depth of [33, 300]) {
      const error = await refusal(load(withMetadata(bytes, 'nextword.quality', nested(depth))));
      assert.ok(error instanceof ModelFileError);
      assert.equal(
        error.message,
        "<model bytes>: metadata 'nextword.quality' is JSON nested more than 32 levels deep, which " +
          'nextword metadata never is; the file was not written by nextword: re-export it',
      );
    }
    const deepest = await load(withMetadata(bytes, 'nextword.quality', nested(32)));
    assert.deepEqual(deepest.info.quality, JSON.parse(nested(32)));
    await deepest.release();
  });

  test('a path, the bytes and a URL give the same model', async () => {
    const server = createServer(async (request, response) => {
      if (request.url === '/model.onnx') {
        response.writeHead(200, { 'content-length': bytes.length });
        response.end(bytes);
      } else if (request.url === '/chunked.onnx') {
        response.writeHead(200); // no length declared: chunked
        response.end(bytes);
      } else if (request.url === '/app/model.onnx') {
        // a development server or a single-page app's host: its index.html for any path
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        response.end('<!doctype html><html><body>app</body></html>');
      } else if (request.url === '/changed.onnx') {
        // nextword serve's refusal, in OpenAI's error shape: the page shows what it says
        const message = 'changed.onnx has changed on disk since this server loaded it: restart the server';
        response.writeHead(409, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ error: { message, code: 'model_file_changed' } }));
      } else if (request.url === '/keyed.onnx') {
        // a server that wants a key (nextword serve --api-key answers in OpenAI's shape; this one says nothing)
        if (request.headers.authorization === 'Bearer k') response.writeHead(200).end(bytes);
        else response.writeHead(401, 'Unauthorized').end();
      } else if (request.url === '/untyped/model.onnx') {
        response.writeHead(200, { 'content-type': 'application/octet-stream' });
        response.end('\r\n  <HTML><body>not found</body></HTML>');
      } else {
        response.writeHead(404, 'Not Found').end();
      }
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${server.address().port}`;
    try {
      const fromUrl = await load(`${base}/model.onnx`);
      const fromBytes = await load(bytes.buffer);
      const text = await model.generate('a neural network', { maxWords: 12, seed: 5 });
      assert.equal(await fromUrl.generate('a neural network', { maxWords: 12, seed: 5 }), text);
      assert.equal(await fromBytes.generate('a neural network', { maxWords: 12, seed: 5 }), text);
      assert.equal(fromUrl.source, `${base}/model.onnx`);
      assert.equal(fromBytes.source, '<model bytes>');
      const missing = await refusal(load(`${base}/nothing.onnx`));
      assert.ok(missing instanceof ModelFileError);
      assert.equal(
        missing.message,
        `model file ${base}/nothing.onnx could not be fetched (HTTP 404 Not Found)`,
      );
      const changed = await refusal(load(`${base}/changed.onnx`));
      assert.equal(
        changed.message,
        `model file ${base}/changed.onnx could not be fetched (HTTP 409 Conflict): changed.onnx has ` +
          'changed on disk since this server loaded it: restart the server',
      );
      // the status alone named no fix: load()'s fetch option, or bytes fetched by the caller
      const keyless = await refusal(load(`${base}/keyed.onnx`));
      assert.ok(keyless instanceof ModelFileError);
      assert.equal(
        keyless.message,
        `model file ${base}/keyed.onnx could not be fetched (HTTP 401 Unauthorized); the server wants ` +
          "credentials: give load() a fetch that sends them, e.g. { fetch: (url) => fetch(url, { headers: { authorization: 'Bearer ' + key } }) }, " +
          'or fetch the file yourself and pass its bytes',
      );
      const key = 'k';
      const keyed = await load(`${base}/keyed.onnx`, {
        fetch: (url) => fetch(url, { headers: { authorization: 'Bearer ' + key } }),
      });
      assert.equal(keyed.vocabSize, model.vocabSize);
      await keyed.release();
      const big = await refusal(load(`${base}/model.onnx`, { limits: { maxFileBytes: 1000 } }));
      const size = bytes.length.toLocaleString('en-US');
      assert.ok(
        big.message.includes(`is ${size} bytes, over the 1,000-byte limit for model files; `),
        big.message,
      );
      assert.match(big.message, /maxFileBytes/);
      // undeclared, the size is not known when the download stops: the bytes read were reported as it
      const cut = await refusal(load(`${base}/chunked.onnx`, { limits: { maxFileBytes: 1000 } }));
      assert.match(
        cut.message,
        /chunked\.onnx is larger than the 1,000-byte limit for model files \(its download was stopped at [\d,]+ bytes\)/,
      );
      // an HTML page where the file should be: it failed as "not a valid ONNX protobuf (... groups)"
      for (const [path, why] of [
        ['/app/model.onnx', 'Content-Type text/html; charset=utf-8'],
        ['/untyped/model.onnx', 'it begins with an HTML tag'],
      ]) {
        const page = await refusal(load(`${base}${path}`));
        assert.ok(page instanceof ModelFileError, String(page));
        assert.ok(
          page.message.startsWith(
            `model file ${base}${path}: the server answered with an HTML page (${why}), not the model ` +
              'file, so the URL likely names no file there',
          ),
          page.message,
        );
      }
      await Promise.all([fromUrl.release(), fromBytes.release()]);
    } finally {
      server.close();
    }
    // a port nothing listens on (one just let go): "fetch failed" alone did not say why
    const closed = createServer();
    await new Promise((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = closed.address().port;
    await new Promise((resolve) => closed.close(resolve));
    const gone = await refusal(load(`http://127.0.0.1:${port}/model.onnx`));
    assert.ok(gone instanceof ModelFileError, String(gone));
    assert.match(
      gone.message,
      /^model file http:\/\/127\.0\.0\.1:\d+\/model\.onnx could not be fetched: fetch failed \(.*ECONNREFUSED/,
    );
  });

  test('an ORT-format file is named as one, and only a file that is not ONNX', async () => {
    const { checkModelFile } = await import('../src/index.js');
    // a FlatBuffer's root offset, then the ORT file identifier: field 2 = 0, then field 0 (not protobuf)
    const ortFile = new Uint8Array([0x10, 0, 0, 0, ...new TextEncoder().encode('ORTM'), 0, 0, 0, 0]);
    assert.throws(
      () => checkModelFile('m.ort', ortFile),
      /^ModelFileError: m\.ort is in onnxruntime's ORT format .*not ONNX: nextword reads the \.onnx file/,
    );
    const damaged = ortFile.slice();
    damaged[5] = 0x58; // 'OXTM': just a damaged file
    assert.throws(() => checkModelFile('m.onnx', damaged), /not a valid ONNX protobuf/);
  });

  test('checkModelFile() takes limits in part, the rest from DEFAULT_LIMITS, as load() does', async () => {
    const { checkModelFile } = await import('../src/index.js');
    assert.equal(checkModelFile('<model bytes>', bytes, { maxNodes: 5000 }).formatVersion, 3);
    assert.equal(checkModelFile('<model bytes>', bytes).formatVersion, 3);
    const few = (() => {
      try {
        checkModelFile('<model bytes>', bytes, { maxNodes: 5 });
      } catch (error) {
        return error;
      }
    })();
    assert.ok(few instanceof ModelFileError, String(few));
    assert.match(few.message, /over the limit of 5/);
    assert.throws(
      () => checkModelFile('<model bytes>', bytes, { maxNodes: 0 }),
      /limits\.maxNodes must be a positive integer, got 0/,
    );
  });

  test('missing files, folders and bad limits are refused with the fix', async () => {
    const missing = await refusal(load('/no/such/model.onnx'));
    assert.equal(missing.message, 'model file /no/such/model.onnx does not exist (or cannot be read)');
    const nul = await refusal(load('bad\0name.onnx')); // as Python's load() says it
    assert.equal(
      nul.message,
      "model file name 'bad\\x00name.onnx' holds a NUL character, which no file name can",
    );
    const folder = await refusal(load(fileURLToPath(new URL('.', import.meta.url))));
    assert.match(folder.message, /is not a regular file; pass the path of a \.onnx file/);
    const run = await mkdtemp(join(tmpdir(), 'nextword-run-'));
    try {
      await symlink(join(run, 'loop.onnx'), join(run, 'loop.onnx')); // a link that points to itself
      assert.match(
        (await refusal(load(join(run, 'loop.onnx')))).message,
        /^model file .*loop\.onnx cannot be read: too many symbolic links encountered$/,
      );
      await mkdir(join(run, '.nextword-run'));
      assert.match((await refusal(load(run))).message, /is not a regular file/); // a folder is no marker
      await rm(join(run, '.nextword-run'), { recursive: true });
      await writeFile(join(run, '.nextword-run'), '');
      const refused = await refusal(load(run));
      assert.equal(
        refused.message,
        `${run} is a training run folder, not a model file: export it first, nextword export ${run} --out MODEL.onnx`,
      );
    } finally {
      await rm(run, { recursive: true });
    }
    const limits = await refusal(load(bytes, { limits: { maxFileBytes: 0 } }));
    assert.equal(limits.message, 'limits.maxFileBytes must be a positive integer, got 0');
    const unknown = await refusal(load(bytes, { limits: { maxFileSize: 5 } }));
    assert.match(unknown.message, /unknown limits \["maxFileSize"\]/);
    for (const error of [limits, unknown]) {
      // the caller's option, not the file: a ModelFileError tells an app to fetch the file again
      assert.ok(error instanceof NextwordError && !(error instanceof ModelFileError), error.name);
    }
    assert.ok((await refusal(load(42))) instanceof TypeError);
  });

  test('withoutSizeCaps() lifts each cap on size and cost, and keeps every other check', async () => {
    // each cap, set below what the bundled model needs, refuses it naming the cap
    const tiny = Object.fromEntries(SIZE_CAPS.map((name) => [name, 1]));
    for (const name of SIZE_CAPS) {
      const refused = await refusal(load(bytes, { limits: { [name]: 1 } }));
      assert.ok(refused instanceof ModelFileError && refused.message.includes(name), refused.message);
    }
    const lifted = await load(bytes, { limits: withoutSizeCaps(tiny) });
    assert.equal(lifted.vocabSize, model.vocabSize);
    await lifted.release();
    // the rest stays: a node cap still refuses, the caller's own limits are kept
    const nodes = await refusal(load(bytes, { limits: withoutSizeCaps({ ...tiny, maxNodes: 1 }) }));
    assert.ok(nodes instanceof ModelFileError && /maxNodes/.test(nodes.message), nodes.message);
    assert.deepEqual(Object.keys(withoutSizeCaps()).sort(), [...SIZE_CAPS].sort());
    for (const name of SIZE_CAPS) assert.ok(withoutSizeCaps()[name] > DEFAULT_LIMITS[name], name);
    assert.equal(clientUncapped, withoutSizeCaps); // the Web Worker's page side exports the same
  });

  test('a fetch given to load() that returns no Response, throws or rejects is named, with the URL', async () => {
    const url = 'https://example.test/model.onnx';
    // what was returned was read as a Response: "could not be fetched (HTTP undefined undefined)"
    for (const [returned, shown] of [
      [undefined, 'undefined'],
      [null, 'null'],
      [{}, 'a plain object'],
      ['abc', 'a string'],
      [bytes, 'a Uint8Array'],
    ]) {
      const error = await refusal(load(url, { fetch: async () => returned }));
      assert.ok(error instanceof NextwordError && !(error instanceof ModelFileError), shown);
      assert.equal(
        error.message,
        `the fetch given to load() returned ${shown} for model file ${url}, not a Response (an object with ` +
          'ok, headers and arrayBuffer()); it must return (or resolve to) what fetch() returns, e.g. ' +
          '(url) => fetch(url, { headers })',
      );
    }
    const failing = [
      [() => Promise.reject(new TypeError('network down')), 'network down'],
      [() => Promise.reject(undefined), 'undefined'], // no message to read: a TypeError of its own
      [
        () => {
          throw new Error('no token');
        },
        'no token',
      ],
    ];
    for (const [fetch, reason] of failing) {
      const error = await refusal(load(url, { fetch }));
      assert.ok(error instanceof ModelFileError, reason);
      assert.equal(
        error.message,
        `model file ${url} could not be fetched by the fetch given to load(): ${reason}`,
      );
    }
    const notFunction = await refusal(load(url, { fetch: 'fetch' }));
    assert.ok(notFunction instanceof NextwordError && !(notFunction instanceof ModelFileError));
    assert.match(notFunction.message, /^fetch must be a function .*, got a string$/);
    // a Response, and what a polyfill returns (a body without getReader()), are read
    const asked = [];
    const fetched = await load(url, { fetch: async (u) => (asked.push(u), new Response(bytes)) });
    const polyfill = {
      ok: true,
      status: 200,
      headers: new Headers(),
      body: {},
      arrayBuffer: async () => bytes.slice().buffer,
    };
    const polyfilled = await load(url, { fetch: async () => polyfill });
    assert.deepEqual(asked, [url]);
    assert.equal(fetched.source, url);
    assert.equal(polyfilled.vocabSize, model.vocabSize);
    await Promise.all([fetched.release(), polyfilled.release()]);
  });

  test("load()'s own options are checked: unknown names, numThreads, null, a module that is not ort", async () => {
    const unknown = await refusal(load(bytes, { threads: 2 }));
    assert.ok(unknown instanceof NextwordError && !(unknown instanceof ModelFileError));
    assert.match(
      unknown.message,
      /^unknown load option\(s\) \["threads"\]; .*\(the number of threads is numThreads\)$/,
    );
    const other = await refusal(load(bytes, { thread: 2 })); // no hint for a name it has none for
    assert.equal(
      other.message,
      'unknown load option(s) ["thread"]; load takes ["ort","sessionOptions","limits","numThreads","fetch","signal"]',
    );
    for (const bad of ['x', -1, 0, 1.5, 1000]) {
      const threads = await refusal(load(bytes, { numThreads: bad }));
      assert.match(threads.message, /^numThreads must be an integer in 1\.\.256, got /, String(bad));
    }
    const above = await refusal(load(bytes, { numThreads: 257 }));
    assert.equal(above.message, 'numThreads must be an integer in 1..256, got 257');
    // 256 is in range: refused only for want of a browser, as every count above 1 under Node
    assert.match(
      (await refusal(load(bytes, { numThreads: 256 }))).message,
      /^numThreads above 1 needs a browser/,
    );
    assert.match((await refusal(load(bytes, null))).message, /^load options must be an object, got null$/);
    // an array named by its typeof (WorkerModel.load says "an array")
    assert.equal((await refusal(load(bytes, []))).message, 'load options must be an object, got an array');
    const ort = await refusal(load(bytes, { ort: {} }));
    assert.ok(!(ort instanceof ModelFileError) && /^ort must be an onnxruntime module/.test(ort.message));
    const loaded = await load(bytes, { limits: null }); // null: the default limits, as Python's None
    assert.equal(loaded.vocabSize, model.vocabSize);
    await loaded.release();
  });

  test('numThreads: refused above 1 under Node, and once the backend started, never changed', async () => {
    // under Node the threaded backend failed to start (blamed on the .wasm) and every later load() with
    // it; in a page a later load()'s numThreads was set and silently not used
    const node = await refusal(load(bytes, { numThreads: 2 }));
    assert.match(
      node.message,
      /^numThreads above 1 needs a browser .*leave numThreads at 1, or pass onnxruntime-node/,
    );
    assert.match((await refusal(load(bytes, { numThreads: '2' }))).message, /got "2"$/);
    const provider = await refusal(load(bytes, { sessionOptions: { executionProviders: ['cuda'] } }));
    assert.ok(provider instanceof NextwordError && !(provider instanceof ModelFileError));
    assert.match(
      provider.message,
      /^sessionOptions\.executionProviders: this onnxruntime-web build has no cuda backend/,
    );
    const again = await load(bytes, { numThreads: 1 }); // the backend still starts: nothing was broken
    await again.release();
    const release = process.release;
    Object.defineProperty(process, 'release', { value: { name: 'a-browser' }, configurable: true });
    try {
      const changed = await refusal(load(bytes, { numThreads: 2 }));
      assert.match(
        changed.message,
        /^numThreads: onnxruntime-web started with 1 thread\(s\) at this page's first/,
      );
    } finally {
      Object.defineProperty(process, 'release', { value: release, configurable: true });
    }
  });

  test("onnxruntime-web's WebAssembly that fails to load is blamed on the .wasm, not the model file", async () => {
    // an ort whose backend cannot start, as onnxruntime-web reports a .wasm it could not fetch
    const broken = (message) => ({
      env: { wasm: { wasmPaths: 'http://host/static/ort/' } },
      InferenceSession: {
        create: async () => {
          throw new Error(message);
        },
      },
    });
    for (const message of [
      'no available backend found. ERR: [wasm] RuntimeError: Aborted(CompileError: expected magic word)',
      "no available backend found. ERR: [cpu] Error: previous call to 'initWasm()' failed.",
    ]) {
      const error = await refusal(load(bytes, { ort: broken(message) }));
      assert.ok(error instanceof NextwordError && !(error instanceof ModelFileError), String(error));
      assert.ok(
        error.message.startsWith(
          'onnxruntime-web could not start its WebAssembly backend ' +
            `(ort-wasm-*.wasm from http://host/static/ort/): ${message}`,
        ),
        error.message,
      );
    }
    const file = await refusal(load(bytes, { ort: broken('Protobuf parsing failed.') }));
    assert.ok(file instanceof ModelFileError);
    assert.match(file.message, /^<model bytes> could not be loaded as an ONNX model: Protobuf parsing/);
  });

  test('a data: URL names itself by its length, not by the whole file in every message', async () => {
    const url = `data:application/octet-stream;base64,${Buffer.from(bytes).toString('base64')}`;
    const loaded = await load(url);
    assert.equal(loaded.source, `<data: URL, ${url.length} characters>`);
    await loaded.release();
    assert.ok((await refusal(loaded.generate('a'))).message.length < 200);
  });

  test('calls that overlap take turns and give what they give one at a time', async () => {
    const own = await load(bytes); // overlapping calls once corrupted onnxruntime-web's memory
    const calls = [
      () => own.nextWords('a neural network is', 3),
      () => own.generate('x', { seed: 1, maxWords: 5 }),
      () => own.generate('the processor', { seed: 2, maxWords: 8 }),
      () => own.score('a neural network is trained'),
      () => own.generate('a neural network', { numBeams: 3, maxWords: 10 }),
    ];
    const alone = [];
    for (const call of calls) alone.push(await call());
    for (let round = 0; round < 2; round++) {
      assert.deepEqual(await Promise.all(calls.map((call) => call())), alone);
    }
    const pending = own.generate('the network', { maxWords: 20, seed: 3 });
    await own.release(); // after the session call under way; the rest of that generation is refused
    assert.match((await refusal(pending)).message, /was released/);
    const after = await refusal(own.generate('x', { maxWords: 2 }));
    assert.ok(after instanceof NextwordError && !(after instanceof ModelFileError), String(after));
    assert.match(after.message, /was released: load\(\) it again/);
    await own.release(); // a second release does nothing
  });

  test('this engine knows the Unicode version the tokenizer tables come from', () => {
    assert.ok(engineNormalizesThisVersion());
  });
});

describe('the code', () => {
  test('is formatted (prettier --check)', () => {
    const prettier = fileURLToPath(new URL('../node_modules/prettier/bin/prettier.cjs', import.meta.url));
    const result = spawnSync(
      process.execPath,
      [prettier, '--check', 'src', 'test', 'bench', 'example', 'types'],
      {
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        encoding: 'utf8',
      },
    );
    assert.equal(
      result.status,
      0,
      `${result.stdout}${result.stderr}\nrun: npx prettier --write src test bench example types`,
    );
  });
});

describe('types/index.d.ts and types/client.d.ts', () => {
  const tsc = (...args) =>
    spawnSync(
      process.execPath,
      [fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url)), ...args],
      {
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        encoding: 'utf8',
      },
    );

  test('a use of the whole API compiles under --strict', () => {
    const result = tsc('-p', 'tsconfig.json');
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });

  test('the tokenizer versions typed are the ones src/tokenizer.js reads', async () => {
    const types = await readFile(new URL('../types/index.d.ts', import.meta.url), 'utf8');
    const typed = types.match(/export type TokenizerVersion = ([\d |]+);/)[1];
    assert.deepEqual(typed.split('|').map(Number), [...READABLE_VERSIONS]);
  });

  test('misuses do not compile', () => {
    const result = tsc(
      '--noEmit',
      '--strict',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--lib',
      'es2022,dom',
      'test/types-wrong.ts',
    );
    assert.notEqual(result.status, 0);
    for (const line of [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17])
      assert.match(result.stdout, new RegExp(`types-wrong\\.ts\\(${line},`), result.stdout);
  });
});

describe('options given in JavaScript', () => {
  const cases = [
    [
      { maxWord: 5, zeta: 1 },
      'unknown generation option(s) ["maxWord","zeta"]; valid options are ["allowUnknown",',
    ],
    [{ stop: [''] }, 'stop must be a string or a list of non-empty strings, got [""]'],
    [{ stop: 5 }, 'stop must be a string or a list of non-empty strings, got 5'],
    [{ stopAtEnd: 'yes' }, 'stopAtEnd must be true or false, got "yes"'],
    [{ temperature: NaN }, 'temperature must be a finite number >= 0 (0 is greedy), got NaN'],
    [{ topP: Infinity }, 'topP must be a finite number > 0 and <= 1, got Infinity'],
    [{ maxWords: true }, 'maxWords must be an integer, got true'],
    [{ seed: '7' }, 'seed must be an integer, got "7"'],
    [
      { cache: { theta: 1, mix: 0.1, window: 8 } },
      'cache must be true or false, got {"theta":1,"mix":0.1,"window":8} (generate and stream use the ' +
        "file's cache settings; settings of your own go to nextWords, suggest and score)",
    ],
    [{ allowUnknown: { on: true } }, 'allowUnknown must be true or false, got {"on":true}'],
    [
      { numBeams: 2, numReturnSequences: 3 },
      'numReturnSequences=3 must be <= numBeams=2 (beam search returns its best beams)',
    ],
  ];
  for (const [options, message] of cases) {
    test(JSON.stringify(options), async () => {
      const error = await refusal(model.generate('x', options));
      assert.ok(error instanceof NextwordError);
      assert.ok(error.message.startsWith(message), error.message);
    });
  }

  test("Python's names and a signal are named with what to write instead", () => {
    // the list of valid names alone left the user to find maxWords for max_words, and how to stop
    const known = '; valid options are [' + '"allowUnknown",';
    for (const [options, end] of [
      [{ max_words: 5, top_k: 2 }, ' (options are camelCase: maxWords for max_words, topK for top_k)'],
      [
        { signal: null },
        ' (a generation takes no signal: to stop one early, use stream() and leave its loop)',
      ],
      [{ maxWord: 5 }, '"topP"]'],
    ]) {
      assert.throws(
        () => resolveOptions(DEFAULTS, options),
        (error) =>
          error instanceof NextwordError && error.message.includes(known) && error.message.endsWith(end),
      );
    }
  });

  test("a maxWords asked for lowers a default minWords above it (as Python's from_options)", () => {
    const fileDefaults = optionsFromMetadata(new Map([['min_words', 20n]]));
    assert.equal(resolveOptions(fileDefaults, { maxWords: 10 }).minWords, 10);
    assert.equal(resolveOptions(fileDefaults, { maxWords: 30 }).minWords, 20);
    assert.throws(
      () => resolveOptions(fileDefaults, { maxWords: 10, minWords: 20 }),
      /^NextwordError: minWords must be at most `maxWords` \(10\), got 20: raise `maxWords` too$/,
    );
  });

  test("numBeams asked for drops a file's sampling defaults (as Python's from_options)", () => {
    const fileDefaults = optionsFromMetadata(
      new Map([
        ['top_k', 40n],
        ['top_p', 0.9],
        ['temperature', 0.7],
      ]),
    );
    const beams = resolveOptions(fileDefaults, { numBeams: 3 });
    assert.deepEqual([beams.topK, beams.topP, beams.temperature, beams.numBeams], [null, null, 1, 3]);
    assert.equal(resolveOptions(fileDefaults, { numBeams: 3, temperature: 0 }).temperature, 0);
    assert.throws(
      () => resolveOptions(fileDefaults, { numBeams: 3, topK: 5 }),
      /^NextwordError: numBeams=3 searches deterministically and cannot be combined with the sampling options topK=5/,
    );
    assert.equal(resolveOptions(fileDefaults, { numBeams: 1 }).topK, 40);
    assert.throws(
      () => resolveOptions(fileDefaults, { seed: -3 }),
      /^NextwordError: seed must be an integer >= 0, got -3$/,
    );
  });

  test("a conflict with a value of the file's own says it is the file's default (as Python's origin)", async () => {
    const fileDefaults = optionsFromMetadata(
      new Map([
        ['num_beams', 4n],
        ['num_return_sequences', 3n],
        ['max_words', 20n],
      ]),
    );
    const cases = [
      [
        { topK: 5 },
        'numBeams=4 searches deterministically and cannot be combined with the sampling options topK=5; drop ' +
          "them or set numBeams=1 (numBeams=4 is this model file's decoding default)",
      ],
      [
        { numBeams: 2 },
        'numReturnSequences=3 must be <= numBeams=2 (beam search returns its best beams; numReturnSequences=3 ' +
          "is this model file's decoding default)",
      ],
      [
        { numReturnSequences: 5, topK: undefined },
        'numReturnSequences=5 must be <= numBeams=4 (beam search returns its best beams; numBeams=4 is this ' +
          "model file's decoding default)",
      ],
      [
        { minWords: 30 },
        'minWords must be at most `maxWords` (20), got 30: raise `maxWords` too (maxWords=20 is this model ' +
          "file's decoding default)",
      ],
      [
        { numBeams: 4, topK: 5 }, // both given: the caller's own
        'numBeams=4 searches deterministically and cannot be combined with the sampling options topK=5; drop ' +
          'them or set numBeams=1',
      ],
    ];
    for (const [options, message] of cases) {
      assert.throws(() => resolveOptions(fileDefaults, options, FILE_DEFAULTS), { message });
    }
    // no origin: the message as it was (a base of the caller's own)
    assert.throws(() => resolveOptions(fileDefaults, { topK: 5 }), {
      message:
        'numBeams=4 searches deterministically and cannot be combined with the sampling options topK=5; ' +
        'drop them or set numBeams=1',
    });
    // generate() and stream() take the file's defaults as the file's
    const beams = await load(
      withMetadata(bytes, 'nextword.generation', '{"num_beams": 4, "num_return_sequences": 2}'),
    );
    try {
      const error = await refusal(beams.generate('a neural network', { topK: 5 }));
      assert.ok(error instanceof NextwordError);
      assert.ok(error.message.endsWith("set numBeams=1 (numBeams=4 is this model file's decoding default)"));
      assert.throws(() => beams.stream('a neural network'), {
        message:
          'stream() produces one text: numReturnSequences and numBeams must be 1 (got 2 and 4; ' +
          "numReturnSequences=2 and numBeams=4 are this model file's decoding defaults)",
      });
    } finally {
      await beams.release();
    }
  });

  test("topK 0 is off, as null is, and turns a file's topK off; stop [] drops a file's stop strings", async () => {
    const fileDefaults = optionsFromMetadata(
      new Map([
        ['top_k', 40n],
        ['stop', ['.']],
      ]),
    );
    assert.deepEqual([fileDefaults.topK, fileDefaults.stop], [40, ['.']]);
    const off = resolveOptions(fileDefaults, { topK: 0, stop: [] });
    assert.deepEqual([off.topK, off.stop], [null, []]);
    assert.deepEqual(off, resolveOptions(fileDefaults, { topK: null, stop: [] }));
    assert.equal(resolveOptions(fileDefaults, { topK: 0n }).topK, null);
    assert.equal(resolveOptions(DEFAULTS, { topK: 0, numBeams: 2 }).topK, null); // no conflict
    assert.equal(optionsFromMetadata(new Map([['top_k', 0n]])).topK, null); // a file from elsewhere
    assert.deepEqual(changes(resolveOptions(DEFAULTS, { topK: 0 })), {});
    // topP 1 keeps every word: off as well, so beam search takes it
    assert.equal(resolveOptions(optionsFromMetadata(new Map([['top_p', 0.8]])), { topP: 1 }).topP, null);
    assert.equal(resolveOptions(DEFAULTS, { topP: 1, numBeams: 2 }).topP, null);
    assert.deepEqual(changes(resolveOptions(DEFAULTS, { topP: 1 })), {});
    for (const [options, message] of [
      [{ topK: -1 }, 'topK must be in 0..1000000 (0: no top-k filtering), got -1'],
      [{ topK: 1_000_001 }, 'topK must be in 0..1000000 (0: no top-k filtering), got 1000001'],
      [{ topK: -2n }, 'topK must be in 0..1000000 (0: no top-k filtering), got -2'],
      [{ topK: 0.5 }, 'topK must be an integer, got 0.5'],
    ]) {
      assert.throws(() => resolveOptions(DEFAULTS, options), { name: 'NextwordError', message });
    }
    assert.throws(() => optionsFromMetadata(new Map([['top_k', -1n]])), {
      name: 'NextwordError',
      message: 'top_k must be in 0..1000000 (0: no top-k filtering), got -1',
    });
    const seeded = { maxWords: 12, seed: 5, temperature: 2 };
    assert.equal(await model.generate('the', { ...seeded, topK: 0 }), await model.generate('the', seeded));
  });

  test('seeds: numbers and bigints, any size', async () => {
    const small = await model.generate('the', { maxWords: 8, seed: 12 });
    assert.equal(await model.generate('the', { maxWords: 8, seed: 12n }), small);
    assert.equal(typeof (await model.generate('the', { maxWords: 8, seed: 2n ** 100n })), 'string');
    // 2**53 + 1 as a number is 2**53: another seed's text, so it is refused with the way out
    const unsafe = await refusal(model.generate('the', { seed: 9007199254740993 }));
    assert.equal(
      unsafe.message,
      'seed 9007199254740992 is past 2**53 - 1, where a number is not exact; pass it as a bigint (9007199254740992n)',
    );
    const large = await refusal(model.generate('the', { seed: 1e21 })); // not "1e+21n", no literal
    assert.match(large.message, /^seed 1000000000000000000000 is past .* \(1000000000000000000000n\)$/);
  });

  test('options must be a plain object: a Map or a class instance would be read as no options', () => {
    assert.throws(
      () => resolveOptions(model.info.generation, new Map([['maxWords', 2]])),
      /^NextwordError: options must be a plain object such as \{ maxWords: 20 \}, got Map$/,
    );
    class Options {
      get temperature() {
        return 0;
      }
    }
    assert.throws(() => resolveOptions(model.info.generation, new Options()), /got Options$/);
    assert.equal(
      resolveOptions(model.info.generation, Object.assign(Object.create(null), { maxWords: 2 })).maxWords,
      2,
    );
  });

  test('beam search: the best beams per prompt, one beam is greedy decoding', async () => {
    const prompts = ['a neural network', 'the processor'];
    const texts = await model.generate(prompts, { numBeams: 4, numReturnSequences: 3, maxWords: 12 });
    assert.equal(texts.length, 6);
    for (const p of [0, 1]) {
      const mine = texts.slice(3 * p, 3 * p + 3);
      assert.equal(new Set(mine).size, 3, 'three different hypotheses');
      assert.equal(await model.generate(prompts[p], { numBeams: 4, maxWords: 12 }), mine[0]);
    }
    // BeamSearch itself with one beam (generate() samples then): the greedy text
    const options = { numBeams: 1, temperature: 0, maxWords: 12 };
    const config = resolveOptions(model.info.generation, options);
    const [one] = await new BeamSearch(model, [model.promptIds('the processor')], config).run();
    assert.equal(one, await model.generate('the processor', options));
    assert.throws(() => model.stream('a', { numBeams: 2 }), /stream\(\) produces one text/);
  });

  test('prompts, streams and suggestions check their arguments', async () => {
    assert.match(
      (await refusal(model.generate(5))).message,
      /^prompt must be a string or a list of strings, got number/,
    );
    assert.match((await refusal(model.generate(['a', null]))).message, /item 1 is null/);
    assert.deepEqual(await model.generate([], {}), []);
    assert.throws(() => model.stream(['a']), /stream\(\) takes one prompt string, got array/);
    assert.throws(() => model.stream('a', { numReturnSequences: 2 }), /stream\(\) produces one text/);
    assert.match(
      (await refusal(model.nextWords('a', 0))).message,
      new RegExp(`^k must be an integer in 1\\.\\.${model.vocabSize}, got 0`),
    );
    assert.match((await refusal(model.score(''))).message, /^text has no words to score/);
    assert.match((await refusal(model.score(['a']))).message, /^text must be a string, got array/);
    assert.match((await refusal(model.nextWords('a', '3'))).message, /got "3"$/);
    assert.match(
      (await refusal(model.nextWords('a', null))).message,
      /^k must be an integer in 1\.\.\d+, got null$/,
    );
    assert.match(
      (await refusal(model.nextWords('a', { cache: false }))).message,
      /^k must be an integer, got an object: k comes second and the options third/,
    );
    assert.match((await refusal(model.score(' " '))).message, /give a text with at least one word$/);
    assert.deepEqual(await model.nextWords('a', 3n), await model.nextWords('a', 3));
  });
});

describe("an LSTM's weights against its hidden size", () => {
  // a DynamicQuantizeLSTM of 32 units on a 16-wide input, one direction: shapes by input position
  const check = (shapes) => {
    const values = new Map(
      Object.entries(shapes).map(([i, s]) => [
        Number(i),
        new Value(
          s.map((n) => new Dim(BigInt(n))),
          1,
        ),
      ]),
    );
    const node = { opType: 'DynamicQuantizeLSTM', inputs: Array.from({ length: 12 }, (_, i) => String(i)) };
    lstmWeights({ get: (_, i) => values.get(i) ?? null }, node, 32n, 1n, new Dim(16n), true);
  };
  const good = { 1: [1, 16, 128], 2: [1, 32, 128], 3: [1, 256], 8: [1], 9: [1], 10: [1], 11: [1] };
  test("the exporter's shapes pass; each weight of another shape is refused as Python refuses it", () => {
    check(good);
    assert.throws(
      () => check({ ...good, 1: [1, 100, 128] }),
      (e) =>
        e.message.startsWith(
          'a DynamicQuantizeLSTM node of hidden size 32 has input weights of shape (1, 100, 128), not (1, 16, 128);',
        ),
    );
    assert.throws(() => check({ ...good, 3: [1, 128] }), /has bias of shape \(1, 128\), not \(1, 256\)/);
  });
  test("a zero point of its own shape, or R's pair unlike W's, is refused (onnxruntime before 1.29 read past it)", () => {
    check({ ...good, 8: [1, 128], 9: [1, 128], 10: [1, 128], 11: [1, 128] });
    assert.throws(
      () => check({ ...good, 9: [1, 128] }),
      (e) =>
        e.message ===
        "a DynamicQuantizeLSTM node has input weights' scale of shape (1) and input weights' zero point of shape (1, 128), which must be alike; the file is crafted or damaged: re-export the model",
    );
    assert.throws(
      () => check({ ...good, 10: [1, 128], 11: [1, 128] }),
      /input weights' scale of shape \(1\) and recurrent weights' scale/,
    );
  });
});

describe('perplexity', () => {
  test("NaN stays NaN (it once read as an overflow's Infinity), as in Python", () => {
    assert.ok(Number.isNaN(perplexity(NaN, 3)));
    assert.equal(perplexity(710 * 3, 3), Infinity);
    assert.equal(perplexity(3, 3), Math.E);
  });
});

describe('the continuous cache', () => {
  test('keeps the newest `window` states with the ids that followed them, per row', () => {
    const cache = new ContinuousCache({ theta: 1, mix: 0.5, window: 2 }, 1, 2);
    const steps = [
      [5, [1, 0]],
      [6, [0, 1]],
      [7, [1, 0]],
      [8, [2, 1]], // stores ([1, 0], 8) over the oldest pair ([1, 0], 6): the ring wraps
    ];
    for (const [token, h] of steps) cache.observe([token], Float32Array.from(h));
    const { tokens, probs } = cache.probabilities(0);
    assert.deepEqual(tokens, [7, 8]);
    const [seven, eight] = [Math.exp(1), Math.exp(2)].map((e) => e / (Math.exp(1) + Math.exp(2)));
    assert.ok(Math.abs(probs[0] - seven) < 1e-12 && Math.abs(probs[1] - eight) < 1e-12, String(probs));
    const logprobs = new Array(10).fill(Math.log(0.1));
    cache.mixLogprobs(logprobs);
    assert.ok(Math.abs(Math.exp(logprobs[8]) - (0.05 + 0.5 * eight)) < 1e-12);
    assert.ok(Math.abs(Math.exp(logprobs[3]) - 0.05) < 1e-12);
    const logits = new Float32Array(10); // uniform: the mixed scores' softmax is the mixture
    cache.mixLogits(logits, 10);
    const total = logits.reduce((sum, l) => sum + Math.exp(l), 0);
    assert.ok(Math.abs(Math.exp(logits[7]) / total - (0.05 + 0.5 * seven)) < 1e-6);
    cache.take([0, 0]); // a copied row goes on alone
    cache.observe([9], Float32Array.from([0, 1]), [1]);
    assert.deepEqual(cache.probabilities(0).tokens, [7, 8]);
    assert.deepEqual(cache.probabilities(1).tokens, [8, 9]);
  });

  test('cosine similarities and a gated share: the spec computed directly (docs/model-format.md)', () => {
    const [theta, a, b, units, vocab] = [3, -1.5, 0.7, 3, 6];
    const config = { theta, gate: [a, b], similarity: 'cosine', window: 3 };
    const cache = new ContinuousCache(config, 2, units);
    const steps = [
      [1, [0.5, -1.25, 2], [3, 0, 0]],
      [4, [0, 0, 0], [0, 0, 1]], // a zero state stays zero
      [2, [-0.3, 0.9, 0.1], [4, 0, 0]],
      [4, [1.7, 0.2, -0.6], [1, 1, 1]],
      [5, [0.25, 0.5, -1], [0, 2, 0]], // the ring (window 3) drops the first pair
    ];
    for (const [token, h0, h1] of steps) cache.observe([token, token], Float32Array.from([...h0, ...h1]));
    // direct: unit-length keys and query (float64 norm, float32 values), float32 dot products
    const unit = (h) => {
      const n = Math.sqrt(h.reduce((sum, x) => sum + Math.fround(x) ** 2, 0));
      return h.map((x) => (n ? Math.fround(Math.fround(x) / n) : 0));
    };
    const logModel = [0.1, 0.3, 0.05, 0.2, 0.15, 0.2].map(Math.log);
    for (const r of [0, 1]) {
      const states = steps.map((s) => unit(s[r + 1]));
      const keys = states.slice(1, 4); // the states after positions 2..4, followed by tokens 2, 4, 5
      const next = [2, 4, 5];
      const query = states[4];
      const scores = keys.map((k) => {
        const dot = Float32Array.from(k).reduce((sum, x, i) => sum + x * query[i], 0);
        return theta * Math.fround(dot);
      });
      const L = Math.log(scores.reduce((sum, s) => sum + Math.exp(s), 0));
      const share = 1 / (1 + Math.exp(-(a + b * L)));
      const pCache = new Array(vocab).fill(0);
      scores.forEach((s, i) => (pCache[next[i]] += Math.exp(s - L)));
      const want = pCache.map((p, w) => (1 - share) * Math.exp(logModel[w]) + share * p);

      const found = cache.probabilities(r);
      assert.deepEqual(found.tokens, [2, 4, 5]);
      assert.ok(Math.abs(found.logOdds - (a + b * L)) < 1e-12, `${found.logOdds} ${a + b * L}`);
      const logprobs = logModel.slice();
      cache.mixLogprobs(logprobs, r);
      logprobs.forEach((lp, w) => assert.ok(Math.abs(Math.exp(lp) - want[w]) < 1e-12, `row ${r} id ${w}`));
      assert.ok(Math.abs(want.reduce((x, y) => x + y) - 1) < 1e-12);
    }
    const logits = Float32Array.from([...logModel, ...logModel].map((l) => l + 2)); // softmax: p_model
    cache.mixLogits(logits, vocab);
    for (const r of [0, 1]) {
      const row = Array.from(logits.slice(r * vocab, (r + 1) * vocab));
      const total = row.reduce((sum, l) => sum + Math.exp(l), 0);
      const logprobs = logModel.slice();
      cache.mixLogprobs(logprobs, r);
      row.forEach((l, w) => assert.ok(Math.abs(Math.exp(l) / total - Math.exp(logprobs[w])) < 1e-6));
    }
  });

  test('cosine: a state and its multiples are the same key; a zero state stays zero', () => {
    const h = Float32Array.from([0.3, -1.1, 2.5, 0.01]);
    const scaled = h.map((x) => 4 * x);
    assert.deepEqual(unitLength(h.slice()), unitLength(scaled));
    const n = Math.hypot(...h);
    assert.ok(Math.abs(Math.hypot(...unitLength(h.slice())) - 1) < 1e-7 && n > 1);
    assert.deepEqual(unitLength(new Float32Array(4)), new Float32Array(4));
    const probs = (scale) => {
      const cache = new ContinuousCache({ theta: 5, mix: 0.3, window: 8, similarity: 'cosine' }, 1, 2);
      for (const [t, v] of [
        [3, [1, 0]],
        [4, [0, scale]],
        [5, [scale, scale]],
      ])
        cache.observe([t], Float32Array.from(v));
      return cache.probabilities(0).probs;
    };
    assert.deepEqual(probs(1), probs(8)); // dot products would differ 64-fold
  });

  test('a constant mix keeps its exact expressions; gate [logit(mix), 0] is the same share', () => {
    const mix = 0.3;
    const steps = [
      [7, [0.5, -1]],
      [8, [0.25, 2]],
      [7, [-1, 0.75]],
    ];
    const fed = (config) => {
      const cache = new ContinuousCache({ theta: 1.5, window: 8, ...config }, 1, 2);
      for (const [t, h] of steps) cache.observe([t], Float32Array.from(h));
      const logprobs = new Array(10).fill(Math.log(0.1));
      cache.mixLogprobs(logprobs);
      const logits = Float32Array.from({ length: 10 }, (_, v) => v / 10);
      cache.mixLogits(logits, 10);
      return { cache, logprobs, logits };
    };
    const constant = fed({ mix });
    const { tokens, probs } = constant.cache.probabilities(0);
    tokens.forEach((token, i) => {
      const want = logaddexp(Math.log(0.1) + Math.log1p(-mix), Math.log(mix) + Math.log(probs[i]));
      assert.equal(constant.logprobs[token], want); // bit for bit: log(mix), log1p(-mix)
    });
    assert.equal(constant.logprobs[0], Math.log(0.1) + Math.log1p(-mix));
    const gated = fed({ gate: [Math.log(mix / (1 - mix)), 0] });
    constant.logprobs.forEach((lp, v) => assert.ok(Math.abs(lp - gated.logprobs[v]) < 1e-12));
    constant.logits.forEach((l, v) => assert.ok(Math.abs(l - gated.logits[v]) < 1e-6));
    const dot = fed({ mix, similarity: 'dot' });
    assert.deepEqual(dot.logprobs, constant.logprobs);
  });

  test("a file's settings: similarity and gate read as Python reads them, bad ones refused", () => {
    const read = (json) => cacheFromMetadata(parsePyJson(json));
    assert.deepEqual(
      { ...read('{"theta": 10, "gate": [-7.62, 1], "window": 256, "similarity": "cosine"}') },
      { theta: 10, window: 256, tuning: {}, similarity: 'cosine', gate: [-7.62, 1] },
    );
    const dot = read('{"theta": 1, "mix": 0.2, "window": 8, "similarity": "dot", "gate": null}');
    assert.deepEqual(Object.keys(dot), ['theta', 'mix', 'window', 'tuning']); // as Python's to_dict()
    assert.equal(read('{"theta": 1, "mix": null, "gate": [0, 0], "window": 8}').mix, undefined);
    const cases = [
      ['"similarity": "euclid", "mix": 0.2', "cache similarity must be one of 'dot', 'cosine', got 'euclid'"],
      ['"similarity": null, "mix": 0.2', "cache similarity must be one of 'dot', 'cosine', got None"],
      [
        '"mix": 0.2, "gate": [1, 2.5]',
        'cache settings need exactly one of mix (a constant share) and gate (a, b), got both (mix 0.2, gate [1, 2.5])',
      ],
      [
        '"mix": null',
        'cache settings need exactly one of mix (a constant share) and gate (a, b), got neither',
      ],
      ['"gate": "ab"', "cache gate must be two numbers [a, b], got 'ab'"],
      ['"gate": {"a": 1}', "cache gate must be two numbers [a, b], got {'a': 1}"],
      ['"gate": 3', 'cache gate must be two numbers [a, b], got 3'],
      ['"gate": [1, 2, 3]', 'cache gate must be two numbers [a, b], got 3'],
      ['"gate": [NaN, 1]', 'cache gate must be two finite numbers [a, b], got nan'],
      ['"gate": [1, true]', 'cache gate must be two finite numbers [a, b], got True'],
      ['"gate": [1, -1500000.5]', 'cache gate must be two numbers [a, b] within ±1,000,000, got -1500000.5'],
    ];
    for (const [settings, message] of cases) {
      assert.throws(
        () => read(`{"theta": 1, "window": 8, ${settings}}`),
        (error) => error instanceof NextwordError && error.message === message,
        `${settings}: ${message}`,
      );
    }
    assert.throws(
      () => read('{"theta": 5000000.5, "mix": 0.1, "window": 8}'),
      (error) => error.message === 'cache theta must be at most 1,000,000, got 5000000.5',
    );
  });

  test('options: checked, with the fix', async () => {
    const cases = [
      [() => model.generate('x', { cache: 'yes' }), 'cache must be true or false, got "yes"'],
      [
        () => model.nextWords('x', 3, { cache: 2 }),
        'cache must be true, false, null or an object {theta, mix, window}, got 2',
      ],
      [() => model.score('x y', { cash: false }), 'unknown option(s) ["cash"]; the only option is "cache"'],
      [
        () => model.nextWords('x', 3, { cache: { theta: 1, mix: 2, window: 3 } }),
        'cache mix must be between 0 and 1 (exclusive), got 2',
      ],
      [
        () => model.nextWords('x', 3, { cache: { theta: 1, mix: 0.2 } }),
        'cache settings: unknown keys [], missing keys ["window"]',
      ],
      [
        () => model.score('x y', { cache: { theta: 1, mix: 0.2, gate: [1, 2], window: 8 } }),
        'cache settings need exactly one of mix (a constant share) and gate (a, b), got both (mix 0.2, gate [1,2])',
      ],
      [
        () => model.score('x y', { cache: { theta: 1, gate: [1, 2], window: 8, similarity: 'Cosine' } }),
        'cache similarity must be one of "dot", "cosine", got "Cosine"',
      ],
      [
        () => model.nextWords('x', 3, { cache: { theta: 1, gate: [1, Infinity], window: 8 } }),
        'cache gate must be two finite numbers [a, b], got Infinity',
      ],
    ];
    for (const [call, message] of cases) {
      const error = await refusal(call());
      assert.ok(error instanceof NextwordError);
      assert.equal(error.message, message);
    }
  });

  test('settings given to a call are used, whatever the file holds', async () => {
    const prompt = 'the network receives the signal and the network';
    const settings = { theta: 1, mix: 0.5, window: 8 };
    const plain = await model.nextWords(prompt, 5, { cache: false });
    const mixed = await model.nextWords(prompt, 5, { cache: settings });
    assert.notDeepEqual(mixed, plain);
    const scored = await model.score(prompt, { cache: settings });
    assert.notEqual(scored.totalLogprob, (await model.score(prompt, { cache: false })).totalLogprob);
    const gated = { theta: 10, gate: Float64Array.of(-3, 0.5), window: 8, similarity: 'cosine' };
    assert.notDeepEqual(await model.nextWords(prompt, 5, { cache: gated }), mixed);
    const gatedScore = await model.score(prompt, { cache: gated });
    assert.ok(![scored.totalLogprob, -Infinity].includes(gatedScore.totalLogprob), String(gatedScore));
    // a key set to undefined is not given, as in the generation options
    const spelled = { ...settings, similarity: undefined, gate: undefined, tuning: undefined };
    assert.deepEqual(await model.nextWords(prompt, 5, { cache: spelled }), mixed);
  });
});

describe('suggestions and scores for a page', () => {
  test('suggest(): the text that appends each word, as `nextword serve` shows it', async () => {
    const words = await model.nextWords('the network.', 4);
    const suggestions = await model.suggest('the network.', 4);
    assert.deepEqual(
      suggestions.map((s) => s.word),
      words.map((w) => w.word),
    );
    for (const { word, text } of suggestions) {
      // a new sentence: a space and a capital, except before punctuation that takes no space
      const want = '.,;:)?!'.includes(word) ? word : ` ${word[0].toUpperCase()}${word.slice(1)}`;
      assert.equal(text, want);
    }
    assert.ok(
      suggestions.some(({ word }) => /^[a-z]/.test(word)),
      'no word to capitalize',
    );
    for (const { text } of await model.suggest('a neural ', 3)) assert.doesNotMatch(text, /^ /);
  });

  test('score(): the word as read, its rendered text, <unk> for unknown words', async () => {
    const { words } = await model.score('A zzyzxqq network.');
    assert.deepEqual(
      words.map((w) => [w.word, w.token, w.text, w.unknown]),
      [
        ['a', 'a', 'A', false],
        ['<unk>', 'zzyzxqq', ' zzyzxqq', true],
        ['network', 'network', ' network', false],
        ['.', '.', '.', false],
      ],
    );
  });
});

describe('the Web Worker client', () => {
  let client;
  before(async () => {
    const { port1, port2 } = new MessageChannel();
    serve(port1);
    client = await WorkerModel.load(bytes, { worker: port2 });
  });
  after(() => client?.terminate());

  test('answers as the model does', async () => {
    assert.equal(client.info.vocabSize, model.vocabSize);
    assert.equal(client.info.generation.noRepeatNgramSize, 4);
    const options = { maxWords: 15, seed: 3n, topK: 40 };
    assert.equal(
      await client.generate('a neural network', options),
      await model.generate('a neural network', options),
    );
    assert.deepEqual(
      await client.generate(['a', 'b'], { maxWords: 4, temperature: 0 }),
      await model.generate(['a', 'b'], { maxWords: 4, temperature: 0 }),
    );
    assert.deepEqual(await client.nextWords('the present', 3), await model.nextWords('the present', 3));
    assert.deepEqual(await client.suggest('the present ', 3), await model.suggest('the present ', 3));
    assert.deepEqual(await client.score('a neural network'), await model.score('a neural network'));
  });

  test('streams, and stops when the loop is left', async () => {
    const options = { maxWords: 30, seed: 9n };
    const pieces = [];
    const stream = client.stream('the processor', options);
    assert.equal(stream.finishReason, null);
    for await (const piece of stream) pieces.push(piece);
    assert.equal(pieces.join(''), await model.generate('the processor', options));
    assert.equal(stream.finishReason, 'length');
    const few = [];
    for await (const piece of client.stream('the processor', options)) {
      few.push(piece);
      if (few.length === 3) break;
    }
    assert.deepEqual(few, pieces.slice(0, 3));
    assert.equal(await client.generate('the processor', options), pieces.join('')); // the worker is free again
  });

  test('stream() refuses bad options when called, with the error the model throws', () => {
    // they failed only at the loop's first next(), where the model's stream() throws at the call
    const posted = [];
    const send = client.port.postMessage;
    client.port.postMessage = (message) => posted.push(message);
    try {
      for (const [prompt, options] of [
        ['x', { maxWords: -1 }],
        ['x', { topK: -1 }],
        ['x', { numBeams: 2 }],
        ['x', { numReturnSequences: 2 }],
        ['x', { maxWords: 5, minWords: 6 }],
        ['x', { words: 5 }],
        ['x', null],
        [['a', 'b'], {}],
        [42, undefined],
      ]) {
        const shown = JSON.stringify([prompt, options]);
        let expected;
        assert.throws(
          () => model.stream(prompt, options),
          (error) => (expected = error) instanceof Error,
        );
        assert.ok(expected instanceof NextwordError, shown);
        assert.throws(
          () => client.stream(prompt, options),
          (error) => error.constructor === expected.constructor && error.message === expected.message,
          shown,
        );
      }
    } finally {
      client.port.postMessage = send;
    }
    assert.deepEqual(posted, []); // nothing was sent to the worker
  });

  test("stream() checks options against the file's defaults, as the model does", async () => {
    // a file whose defaults beam-search and write at least 10 words: stream() refuses its numBeams, and a
    // maxWords under its minWords lowers that minWords
    const file = withMetadata(bytes, 'nextword.generation', '{"num_beams": 2, "min_words": 10}');
    const beams = await load(file);
    const { port1, port2 } = new MessageChannel();
    serve(port1);
    const worker = await WorkerModel.load(file, { worker: port2 });
    try {
      const expected = {
        name: 'NextwordError',
        message:
          'stream() produces one text: numReturnSequences and numBeams must be 1 (got 1 and 2; numBeams=2 is ' +
          "this model file's decoding default)",
      };
      assert.throws(() => beams.stream('a neural network'), expected);
      assert.throws(() => worker.stream('a neural network'), expected);
      for (const options of [
        { numBeams: 1, maxWords: 3, seed: 2n },
        { numBeams: 1, maxWords: 12, temperature: 0 },
      ]) {
        const pieces = [];
        for await (const piece of worker.stream('a neural network', options)) pieces.push(piece);
        assert.equal(pieces.join(''), await beams.generate('a neural network', options));
      }
    } finally {
      worker.terminate();
      port1.close();
      await beams.release();
    }
  });

  test("takes any view of the bytes, copying exactly them and leaving the caller's intact", async () => {
    // a Buffer's slice() shares memory: sending its buffer emptied the caller's Buffer, or sent the whole
    // pool around a small one; a DataView has no slice() at all
    const pool = Buffer.alloc(bytes.length + 64);
    pool.set(bytes, 32);
    const views = [
      pool.subarray(32, 32 + bytes.length),
      new DataView(pool.buffer, pool.byteOffset + 32, bytes.length),
    ];
    for (const view of views) {
      const { port1, port2 } = new MessageChannel();
      serve(port1);
      const worker = await WorkerModel.load(view, { worker: port2 });
      assert.equal(worker.info.vocabulary, model.vocabSize);
      assert.equal(view.byteLength, bytes.length); // still the caller's
      worker.terminate();
      port1.close();
    }
    assert.deepEqual(new Uint8Array(pool.buffer, pool.byteOffset + 32, bytes.length), bytes);
  });

  test('takes a Blob, as load() does', async () => {
    const { port1, port2 } = new MessageChannel();
    serve(port1);
    const worker = await WorkerModel.load(new Blob([bytes]), { worker: port2 });
    try {
      assert.equal(worker.info.source, '<model bytes>');
      const options = { maxWords: 6, seed: 4n };
      assert.equal(
        await worker.generate('the processor', options),
        await model.generate('the processor', options),
      );
    } finally {
      worker.terminate();
      port1.close();
    }
  });

  test("wasmPaths: a folder or onnxruntime-web's {wasm, mjs}, each URL made absolute", async () => {
    // it sent String({wasm, mjs}), "[object Object]", as the folder
    const sent = [];
    class Recorder extends EventTarget {
      postMessage(message) {
        sent.push(message);
      }
      terminate() {}
    }
    const had = Object.getOwnPropertyDescriptor(globalThis, 'location');
    globalThis.location = { href: 'http://host/app/page.html' };
    try {
      for (const wasmPaths of [
        { wasm: 'ort/ort-wasm-simd-threaded.wasm', mjs: new URL('http://cdn/ort-wasm-simd-threaded.mjs') },
        '/ort/',
        new URL('http://cdn/ort/'),
      ]) {
        const worker = new Recorder();
        WorkerModel.load('model.onnx', { worker, wasmPaths }).catch(() => {});
        worker.dispatchEvent(new Event('error')); // settles the load: nothing answers it
      }
    } finally {
      if (had) Object.defineProperty(globalThis, 'location', had);
      else delete globalThis.location;
    }
    assert.deepEqual(
      sent.map(({ source, options }) => [source, options.wasmPaths]),
      [
        [
          'http://host/app/model.onnx',
          {
            wasm: 'http://host/app/ort/ort-wasm-simd-threaded.wasm',
            mjs: 'http://cdn/ort-wasm-simd-threaded.mjs',
          },
        ],
        ['http://host/app/model.onnx', 'http://host/ort/'],
        ['http://host/app/model.onnx', 'http://cdn/ort/'],
      ],
    );
  });

  test('an ortUrl that cannot be imported, or is not onnxruntime-web, is named with the fix', async () => {
    // the import's bare "TypeError: Failed to fetch dynamically imported module" named neither
    const missing = new URL('./no-such-ort.mjs', import.meta.url).href;
    for (const [ortUrl, problem] of [
      [missing, `ortUrl ${missing} could not be imported (`],
      [
        'data:text/javascript,export const x = 1;',
        'ortUrl data:text/javascript,export const x = 1; is not onnxruntime-web',
      ],
    ]) {
      const { port1, port2 } = new MessageChannel();
      serve(port1);
      const error = await refusal(WorkerModel.load(bytes, { worker: port2, ortUrl }));
      port1.close();
      assert.ok(error instanceof NextwordError && !(error instanceof ModelFileError), String(error));
      assert.ok(error.message.startsWith(problem), error.message);
      assert.match(
        error.message,
        /give ortUrl the URL of onnxruntime-web's ort\.wasm\.min\.mjs as your server serves it/,
      );
    }
  });

  test('under Node: WorkerModel.load without a worker, and nextword-web/worker imported, say what to do', async () => {
    // they threw "ReferenceError: Worker is not defined" (or, once onnxruntime-web had set globalThis.Worker
    // to worker_threads' Worker, "TypeError: port.addEventListener is not a function")
    const had = Object.getOwnPropertyDescriptor(globalThis, 'Worker');
    for (const Worker of [undefined, had?.value]) {
      Object.defineProperty(globalThis, 'Worker', { value: Worker, configurable: true, writable: true });
      try {
        const load = await refusal(WorkerModel.load(bytes));
        assert.ok(load instanceof NextwordError, String(load));
        assert.match(
          load.message,
          /^WorkerModel needs a Web Worker, which this JavaScript environment lacks/,
        );
        assert.match(load.message, /under Node use load\(\) from 'nextword-web', in a worker_threads Worker/);
      } finally {
        if (had) Object.defineProperty(globalThis, 'Worker', had);
        else delete globalThis.Worker;
      }
    }
    const entry = await refusal(import('../src/worker.js'));
    assert.ok(entry instanceof NextwordError, String(entry));
    assert.match(entry.message, /^nextword-web\/worker is the script of a Web Worker and runs only as one/);
  });

  test('a stream left early stops in the worker within a few words', async () => {
    // the worker's loop never gave the page's cancel a turn: it generated all 3,000 words first
    const { port1, port2 } = new MessageChannel();
    let posted = 0;
    const send = port1.postMessage.bind(port1);
    port1.postMessage = (message) => {
      if (message.piece !== undefined) posted++;
      send(message);
    };
    serve(port1);
    const worker = await WorkerModel.load(bytes, { worker: port2 });
    const long = { maxWords: 3000, stopAtEnd: false, seed: 1n };
    let seen = 0;
    for await (const piece of worker.stream('a neural network', long)) {
      assert.ok(piece);
      if (++seen === 2) break;
    }
    assert.equal(
      await worker.generate('x', { maxWords: 2, seed: 1n }),
      await model.generate('x', { maxWords: 2, seed: 1n }),
    );
    assert.ok(posted < 1000, `the worker sent ${posted} pieces after the loop was left at 2`);
    worker.terminate();
    port1.close();
  });

  test("a worker started for a model that fails to load is ended; a caller's own worker is not", async () => {
    // a Web Worker (which Node lacks) that answers every request with a refusal
    const started = [];
    class Refusing extends EventTarget {
      constructor() {
        super();
        this.terminated = false;
        started.push(this);
      }
      postMessage({ id }) {
        const error = { name: 'ModelFileError', message: 'refused' };
        setTimeout(() => this.dispatchEvent(new MessageEvent('message', { data: { id, error } })));
      }
      terminate() {
        this.terminated = true;
      }
    }
    const had = Object.getOwnPropertyDescriptor(globalThis, 'Worker');
    globalThis.Worker = Refusing;
    try {
      assert.ok((await refusal(WorkerModel.load(bytes))) instanceof ModelFileError);
      const own = new Refusing();
      assert.ok((await refusal(WorkerModel.load(bytes, { worker: own }))) instanceof ModelFileError);
      assert.deepEqual(
        started.map((worker) => worker.terminated),
        [true, false],
      );
    } finally {
      if (had) Object.defineProperty(globalThis, 'Worker', had);
      else delete globalThis.Worker;
    }
  });

  test('a model the worker fails to load in place of another leaves no model, not the released one', async () => {
    const { port1, port2 } = new MessageChannel();
    serve(port1);
    const worker = await WorkerModel.load(bytes, { worker: port2 });
    const bad = new Uint8Array([1, 2, 3]);
    assert.ok(
      (await refusal(worker._request({ type: 'load', source: bad.buffer }))) instanceof ModelFileError,
    );
    const after = await refusal(worker.generate('a', { maxWords: 2 }));
    assert.match(after.message, /^no model loaded/);
    worker.terminate();
  });

  test(
    'load options it does not take are named, with its own list, before the worker is asked',
    { timeout: 10_000 },
    async () => {
      // they reached the worker's load(), whose message listed load()'s options (ort, fetch...), and a
      // function given as fetch failed as a DataCloneError of postMessage
      const { port1, port2 } = new MessageChannel();
      const asked = [];
      port1.onmessage = (event) => asked.push(event.data);
      for (const [options, message] of [
        [
          { wasmPath: '/ort/' },
          /^unknown WorkerModel\.load option\(s\) \["wasmPath"\]; it takes \[.*"wasmPaths".*\]$/,
        ],
        [
          { fetch: (url) => fetch(url), wasmPath: '/ort/' },
          /\["fetch","wasmPath"\]; it takes .*: a function cannot reach the worker/,
        ],
        [
          { fetch: (url) => fetch(url) },
          /\["fetch"\].*a function cannot reach the worker; fetch the model yourself/,
        ],
        [{ ort: {} }, /\["ort"\].*give onnxruntime-web's module as ortUrl\)$/],
      ]) {
        const error = await refusal(WorkerModel.load(bytes, { worker: port2, ...options }));
        assert.ok(error instanceof NextwordError && !(error instanceof ModelFileError), String(error));
        assert.match(error.message, message);
      }
      for (const [options, got] of [
        [null, 'null'],
        ['x', 'string'],
        [[], 'an array'],
      ]) {
        const error = await refusal(WorkerModel.load(bytes, options));
        assert.ok(error instanceof NextwordError, String(error));
        assert.equal(error.message, `WorkerModel.load options must be an object, got ${got}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20)); // a request posted would have arrived
      assert.deepEqual(asked, []);
      port1.close();
    },
  );

  test('a model made with new, not load(), is refused with the way to make one', async () => {
    // they threw "Cannot read properties of undefined (reading 'stateSizes')" / ('addEventListener')
    const { NextWordModel } = await import('../src/index.js');
    assert.throws(() => new NextWordModel(), {
      name: 'NextwordError',
      message: /^NextWordModel has no public constructor: create one with await load\(source, options\)/,
    });
    assert.throws(() => new WorkerModel(), {
      name: 'NextwordError',
      message: /^WorkerModel has no public constructor: create one with await WorkerModel\.load\(/,
    });
  });

  test('errors keep their type and message', async () => {
    const option = await refusal(client.generate('x', { topK: -1 }));
    assert.ok(option instanceof NextwordError);
    assert.equal(option.message, 'topK must be in 0..1000000 (0: no top-k filtering), got -1');
    const { port1, port2 } = new MessageChannel();
    serve(port1);
    const file = await refusal(WorkerModel.load(new Uint8Array([1, 2, 3]), { worker: port2 }));
    assert.ok(file instanceof ModelFileError);
    assert.match(
      file.message,
      /^<model bytes> could not be loaded as an ONNX model: it is not a valid ONNX protobuf/,
    );
    port2.close();
  });

  test('a failed run and built-in errors keep their class; calls after terminate() fail at once', async () => {
    const { ModelRunError } = await import('../src/errors.js');
    const { port1, port2 } = new MessageChannel();
    const replies = [];
    // a worker that answers every request with an error of the given name
    port1.addEventListener('message', ({ data }) => {
      const name = replies.shift();
      port1.postMessage({ id: data.id, error: { name, message: `a ${name}` } });
    });
    port1.start();
    const fake = new WorkerModel(port2);
    for (const [name, Type] of [
      ['ModelRunError', ModelRunError],
      ['TypeError', TypeError],
      ['RangeError', RangeError],
    ]) {
      replies.push(name);
      const error = await refusal(fake.generate('x'));
      assert.ok(error instanceof Type, name);
      assert.equal(error.message, `a ${name}`);
    }
    replies.push('constructor'); // a name that is not an own key: a plain Error, named as sent
    const odd = await refusal(fake.generate('x'));
    assert.equal(odd.constructor, Error);
    assert.equal(odd.name, 'constructor');
    fake.terminate();
    const after = await refusal(fake.generate('x'));
    assert.ok(after instanceof NextwordError);
    assert.match(after.message, /^the worker was terminated: load the model again/);
    assert.throws(() => fake.stream('x'), /the worker was terminated/);
    port1.close();
  });

  test('a worker that fails (its script missing, a reply unreadable) fails every waiting call', async () => {
    // a stand-in for a Worker: it takes requests and never answers them
    class SilentWorker extends EventTarget {
      postMessage() {}
      terminate() {
        this.terminated = true;
      }
    }
    const missing = new SilentWorker();
    const loading = WorkerModel.load(new Uint8Array([1]), { worker: missing });
    missing.dispatchEvent(new Event('error')); // what a Worker fires when its script is a 404
    const error = await refusal(loading);
    assert.ok(error instanceof NextwordError);
    assert.equal(error.message, 'the worker failed: its script could not be loaded');
    assert.ok(missing.terminated);

    const garbled = new SilentWorker();
    const client = new WorkerModel(garbled);
    const waiting = [client.generate('x'), client.score('x')];
    const stream = client.stream('x');
    garbled.dispatchEvent(new Event('messageerror'));
    for (const call of [...waiting, stream.next()]) {
      assert.match((await refusal(call)).message, /^the worker sent a reply that could not be read/);
    }
    assert.match((await refusal(client.generate('x'))).message, /^the worker was terminated/);
  });

  // each test bounded: an abort that goes unheard leaves a load waiting on its worker, which fails here in
  // seconds, not at the runner's 300 s --test-timeout
  describe('WorkerModel.load({ signal })', { timeout: 10_000 }, () => {
    /** globalThis.Worker replaced by `Stand`, for `run()`; the Workers it made, in order. */
    async function withWorker(Stand, run) {
      const had = Object.getOwnPropertyDescriptor(globalThis, 'Worker');
      globalThis.Worker = Stand;
      try {
        return await run();
      } finally {
        if (had) Object.defineProperty(globalThis, 'Worker', had);
        else delete globalThis.Worker;
      }
    }
    const isAbortError = (error) => error instanceof DOMException && error.name === 'AbortError';

    test('a signal already aborted rejects at once, with no worker started and nothing sent', async () => {
      const started = [];
      class Counted extends EventTarget {
        constructor() {
          super();
          started.push(this);
        }
        postMessage() {
          assert.fail('a message was sent');
        }
        terminate() {}
      }
      await withWorker(Counted, async () => {
        const error = await refusal(WorkerModel.load(bytes, { signal: AbortSignal.abort() }));
        assert.ok(isAbortError(error), String(error));
        const given = new Counted(); // a worker of the caller's: nothing is posted to it
        assert.ok(
          isAbortError(
            await refusal(WorkerModel.load(bytes, { worker: given, signal: AbortSignal.abort() })),
          ),
        );
        // the signal's own reason, as fetch rejects with it
        const reason = new Error('left the page');
        assert.equal(await refusal(WorkerModel.load(bytes, { signal: AbortSignal.abort(reason) })), reason);
      });
      assert.equal(started.length, 1); // the caller's own
      // as fetch, which takes null (and undefined) for no signal, anything else is refused
      for (const signal of [{}, 'abort', { aborted: true }]) {
        const error = await refusal(WorkerModel.load(bytes, { signal }));
        assert.ok(
          error instanceof TypeError && /^signal must be an AbortSignal/.test(error.message),
          String(error),
        );
      }
    });

    test('aborted while the worker loads: an AbortError at once, and the worker it started is terminated', async (t) => {
      // a Web Worker (which Node lacks) running nextword-web/worker's code on a channel: the load is real
      const started = [];
      // its ports closed when the test ends, failed or not: an open one keeps the file's process alive
      t.after(() => started.forEach((worker) => worker.terminate()));
      const events = [];
      class Served extends EventTarget {
        constructor() {
          super();
          started.push(this);
          const { port1, port2 } = new MessageChannel();
          serve(port1);
          this.inside = port1;
          this.outside = port2;
          port2.onmessage = ({ data }) => {
            events.push(data.error ? 'failed' : 'loaded');
            this.dispatchEvent(new MessageEvent('message', { data }));
          };
          this.terminated = false;
        }
        postMessage(message, transfer) {
          events.push(message.type);
          this.outside.postMessage(message, transfer);
        }
        terminate() {
          this.terminated = true;
          this.outside.close();
          this.inside.close();
        }
      }
      const controller = new AbortController();
      const error = await withWorker(Served, () => {
        const loading = WorkerModel.load(bytes, { signal: controller.signal });
        assert.deepEqual(events, ['load']); // under way in the worker
        controller.abort();
        return refusal(loading);
      });
      assert.ok(isAbortError(error), String(error));
      assert.equal(started.length, 1);
      assert.ok(started[0].terminated, 'the worker it started was left running');
      assert.deepEqual(events, ['load']); // rejected before the worker answered, which it never will now
      // aborted with a reason of the caller's: the load rejects with it, as fetch does
      const reason = new Error('left the page');
      const given = new AbortController();
      const aborted = await withWorker(Served, () => {
        const loading = WorkerModel.load(bytes, { signal: given.signal });
        given.abort(reason);
        return refusal(loading);
      });
      assert.equal(aborted, reason);
      assert.ok(started[1].terminated, 'the worker it started was left running');

      // aborted after the load: nothing happens to the model
      const later = new AbortController();
      const loaded = await withWorker(Served, () => WorkerModel.load(bytes, { signal: later.signal }));
      later.abort();
      assert.ok(!started[2].terminated);
      assert.equal(
        await loaded.generate('a neural network', { maxWords: 5, temperature: 0 }),
        await model.generate('a neural network', { maxWords: 5, temperature: 0 }),
      );
      loaded.terminate();
    });

    test("a caller's own worker, aborted while it loads, stays theirs: not closed, and free to load again", async (t) => {
      const { port1, port2 } = new MessageChannel();
      const answered = [];
      const send = port1.postMessage.bind(port1);
      let answer;
      const firstAnswer = new Promise((resolve) => (answer = resolve));
      port1.postMessage = (message) => {
        answered.push(message.id);
        answer();
        send(message);
      };
      serve(port1);
      t.after(() => port1.close()); // the channel closed when the test ends, failed or not (as above)
      const closed = [];
      port2.close = () => closed.push('closed');
      const controller = new AbortController();
      const loading = WorkerModel.load(bytes, { worker: port2, signal: controller.signal });
      controller.abort();
      const error = await refusal(loading);
      assert.ok(isAbortError(error), String(error));
      assert.equal(answered.length, 0); // rejected before the worker's answer
      await firstAnswer; // the worker finishes the load it had begun, and answers no one
      // the next load on this worker is not settled by that late answer (a file it refuses stays refused)
      const refused = await refusal(WorkerModel.load(new Uint8Array([1, 2, 3]), { worker: port2 }));
      assert.ok(refused instanceof ModelFileError, String(refused));
      const again = await WorkerModel.load(bytes, { worker: port2, signal: null });
      assert.equal(
        await again.generate('the present', { maxWords: 6, temperature: 0 }),
        await model.generate('the present', { maxWords: 6, temperature: 0 }),
      );
      assert.deepEqual(closed, []); // neither the abort nor the load after it closed the caller's port
      delete port2.close;
      again.terminate();
    });

    test('aborted as the answer comes in: the load still rejects, and the worker is ended or let go', async () => {
      // a worker the test answers by hand; it counts the listeners it holds
      const started = [];
      class Answered extends EventTarget {
        constructor() {
          super();
          started.push(this);
          this.posted = [];
          this.listening = new Set();
          this.terminated = false;
        }
        addEventListener(type, listener) {
          this.listening.add(listener);
          super.addEventListener(type, listener);
        }
        removeEventListener(type, listener) {
          this.listening.delete(listener);
          super.removeEventListener(type, listener);
        }
        postMessage(message) {
          this.posted.push(message);
        }
        terminate() {
          this.terminated = true;
        }
        answer() {
          const { id } = this.posted[0];
          this.dispatchEvent(new MessageEvent('message', { data: { id, result: { vocabSize: 1 } } }));
        }
      }
      const loadAndAbort = (options) => {
        const controller = new AbortController();
        const loading = WorkerModel.load(bytes, { ...options, signal: controller.signal });
        (options.worker ?? started.at(-1)).answer(); // the load's answer settles its request...
        controller.abort(); // ...and the abort comes in the same task, before the load resumes
        return refusal(loading);
      };
      const error = await withWorker(Answered, () => loadAndAbort({}));
      assert.ok(isAbortError(error), String(error));
      assert.equal(started.length, 1);
      assert.ok(started[0].terminated, 'the worker it started was left running');

      const given = new Answered();
      assert.ok(isAbortError(await loadAndAbort({ worker: given })));
      assert.ok(!given.terminated); // the caller's, not ended...
      assert.equal(given.listening.size, 0); // ...and no longer listened to
    });
  });
});

describe('package.json', () => {
  test("onnxruntime-web is a peer dependency (one copy, the app's), its pinned dev version in range", async () => {
    // an exact dependency gave an app that installs onnxruntime-web two copies: its wasmPaths went to
    // the other one, and Vite shipped two .wasm files
    const manifest = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
    assert.equal(manifest.dependencies?.['onnxruntime-web'], undefined);
    const range = manifest.peerDependencies?.['onnxruntime-web'];
    const pinned = manifest.devDependencies?.['onnxruntime-web'];
    assert.match(range ?? '', /^\^\d+\.\d+\.\d+$/, 'a caret range');
    assert.match(pinned ?? '', /^\d+\.\d+\.\d+$/, 'an exact version, for the tests and vendor.py');
    // ^a.b.c: the same major version a (a >= 1), and b.c or later
    const [low, have] = [range.slice(1), pinned].map((v) => v.split('.').map(Number));
    assert.ok(low[0] >= 1 && have[0] === low[0], `${pinned} is not within ${range}`);
    assert.ok(
      have[1] > low[1] || (have[1] === low[1] && have[2] >= low[2]),
      `${pinned} is not within ${range}`,
    );
    assert.equal(manifest.exports['./package.json'], './package.json');
  });
});

describe('the tokenizer', () => {
  test('drops figure references in time linear in a run of whitespace', () => {
    // tried from every space of a run, the figure-reference pattern rescanned the rest of it: a
    // megabyte of spaces took minutes; it now starts where a run starts (parity tests: same matches)
    const text = `a${' '.repeat(1_000_000)}(${'\t'.repeat(1_000_000)}`;
    assert.equal(normalize(text, { dropFigureRefs: true, lowercase: true }), 'a (');
    assert.equal(normalize('see (12a) and (1, 2)', { dropFigureRefs: true }), 'see and');
  });
});

describe('stop strings', () => {
  // tests/test_generation.py's STOPS and STOP_FORMS: runtime/text.py's stop_forms gives the same
  const STOPS = ['\uff01', '!', 'a,b', 'x', 'it\u2019s', '?:;', '\u2026', 'a\uff1ab\uff1bc'];
  const STOP_FORMS = [
    ...['!', '\uff01', 'a,b', 'a\uff0cb', 'x', "it's"],
    ...['?:;', '\uff1f\uff1a\uff1b', '...', 'a:b;c', 'a\uff1ab\uff1bc'],
  ];

  test("are read as the tokenizers write text: apostrophes as ', each of , ! ? : ; also full-width", () => {
    for (const apostrophe of '\u2018\u2019\u201b\u2032') assert.equal(asInText(`it${apostrophe}s`), "it's");
    assert.deepEqual(stopForms(STOPS), STOP_FORMS);
  });

  test('one longer once normalized ("\u2026" is "...") is found across the pieces that bring it', () => {
    const builder = new TextBuilder(
      new Tokenizer(['<pad>', '<unk>', '<eod>', 'a', '.']),
      null,
      ['\u2026'],
      false,
    );
    const taken = ['a', '.', '.', '.'].map((token) => {
      builder.add(token);
      return builder.take();
    });
    assert.deepEqual([builder.stopped, builder.text, taken], [true, 'A', ['A', '', '', '']]);
  });
});

describe('spacing', () => {
  test('the full-width marks of Chinese and Japanese are glued to any word before them', () => {
    for (const mark of '\uff0c\uff01\uff1f\uff1a\uff1b') assert.ok(glued(mark, 'a'), mark);
  });
});

describe('the exported defaults', () => {
  test('are frozen all the way down: a change would reach every later load() and call', () => {
    // GENERATION_DEFAULTS.stop.push(...) gave every model loaded afterwards that stop string, and
    // DEFAULT_LIMITS.irVersions[0] = 9 made every later load() fail
    assert.throws(() => GENERATION_DEFAULTS.stop.push('network'), TypeError);
    assert.throws(() => {
      DEFAULT_LIMITS.irVersions[0] = 9;
    }, TypeError);
    assert.throws(() => {
      DEFAULT_LIMITS.allowedOps[0][1] = 'Gemm';
    }, TypeError);
    assert.deepEqual(model.info.generation.stop, []);
  });
});

describe('decoding rules at their boundaries', () => {
  /** The one row of a greedy generate() of `prompt`: its ids and why it finished. */
  async function greedyRow(prompt, options = {}) {
    const config = resolveOptions(model.info.generation, { temperature: 0, maxWords: 80, ...options });
    const generation = new Generation(model, [model.promptIds(prompt)], config);
    await generation.run();
    return generation.rows[0];
  }

  test('minWords holds the end of the document back until exactly minWords words are out', async () => {
    const free = await greedyRow('what? yes! no.'); // ends the document by itself
    assert.equal(free.reason, 'end', 'the prompt no longer ends by itself: pick another');
    const n = free.generated.length;
    const atN = await greedyRow('what? yes! no.', { minWords: n }); // the end comes at word n+1: allowed
    assert.deepEqual([atN.reason, atN.generated], ['end', free.generated]);
    const past = await greedyRow('what? yes! no.', { minWords: n + 1 }); // not yet allowed
    assert.ok(past.generated.length > n, `minWords ${n + 1} gave ${past.generated.length} words`);
    assert.deepEqual(past.generated.slice(0, n), free.generated);
  });

  test('stop strings: the earliest match wins, and a stream never hands out the start of a match', async () => {
    const options = { temperature: 0, maxWords: 30 };
    const full = await model.generate('a neural network', options);
    const word = full.match(/[a-z]{6,}/)[0]; // a word that one new piece brings whole
    // both stops match inside the same piece: the text ends before the earlier one
    const stop = [word.slice(2), word.slice(0, 3)];
    const cut = Math.min(...stop.map((s) => full.indexOf(s)));
    assert.equal(await model.generate('a neural network', { ...options, stop }), full.slice(0, cut));
    // a stop whose start ("rk") ends one piece and whose end (" ") starts the next: held until decided
    const at = full.search(/[a-z]{2} [a-z]/);
    const split = full.slice(at, at + 3);
    const text = await model.generate('a neural network', { ...options, stop: [split] });
    assert.equal(text, full.slice(0, full.indexOf(split)));
    const pieces = [];
    for await (const piece of model.stream('a neural network', { ...options, stop: [split] }))
      pieces.push(piece);
    assert.equal(pieces.join(''), text);
  });

  test('decode: consecutive ends of documents start one new paragraph', () => {
    const [a, b] = model.tokenizer.encode('a network');
    const eod = model.tokenizer.eodId;
    assert.equal(model.tokenizer.decode([a, eod, b]), 'A\n\nNetwork'); // as Python's Tokenizer.decode
    assert.equal(model.tokenizer.decode([a, eod, eod, b]), 'A\n\nNetwork');
    assert.throws(() => model.tokenizer.decode('12'), /^TypeError: decode takes token ids .*got a string/);
  });

  test('decode, tokenOf and idOf refuse what is not an id or a token, as Python does', () => {
    const t = model.tokenizer;
    const last = `0\\.\\.${t.size - 1}`;
    // '5' read as a property name was token 5, 'at' the function Array.prototype.at, 5 as ids gave ''
    for (const [call, message] of [
      [() => t.decode(['5']), `^TypeError: token ids must be integers in ${last}, got '5'$`],
      [() => t.decode([[5]]), `^TypeError: token ids must be integers in ${last}, got array$`],
      [() => t.tokenOf('at'), `^TypeError: token ids must be integers in ${last}, got 'at'$`],
      [() => t.tokenOf(1.5), `^TypeError: token ids must be integers in ${last}, got 1.5$`],
      [() => t.decode(5), '^TypeError: decode takes token ids \\(an array of integers\\), got number$'],
      [() => t.decode(null), '^TypeError: decode takes token ids \\(an array of integers\\), got null$'],
      [() => t.decode([-1]), `^RangeError: token id -1 is not in this vocabulary of ids ${last}$`],
      [() => t.tokenOf(t.size), `^RangeError: token id ${t.size} is not in this vocabulary of ids ${last}$`],
      [() => t.idOf(5), '^TypeError: token must be a string, got number$'],
      [
        () => new Tokenizer(['<pad>', '<unk>', '<eod>'], undefined, 6),
        'must be one of \\[1, 2, 3, 4, 5\\], got 6$',
      ],
    ])
      assert.throws(call, (error) => new RegExp(message).test(`${error.name}: ${error.message}`));
    const [a, b] = t.encode('a network');
    assert.equal(t.decode([BigInt(a), b]), t.decode([a, b])); // ids of an int64 tensor's BigInt64Array
    assert.equal(t.decode(new Set([a, b])), 'A network'); // any iterable, in its order
  });

  test('temperature: 0.01 and 100 are allowed, just past them is not', () => {
    for (const temperature of [0.01, 100])
      assert.equal(resolveOptions(DEFAULTS, { temperature }).temperature, temperature);
    for (const temperature of [0.0099, 100.01])
      assert.throws(
        () => resolveOptions(DEFAULTS, { temperature }),
        /temperature must be 0 \(greedy\) or from 0.01 to 100/,
      );
  });
});

describe('beam search on made-up logits', () => {
  // A model of four words whose every session call returns `logits(call)` for each row.
  function fakeModel(logits) {
    const tokenizer = new Tokenizer(['<pad>', '<unk>', '<eod>', 'a', 'b', 'c', 'd']);
    let call = 0;
    return {
      tokenizer,
      vocabSize: 7,
      stateWidths: [1, 1],
      info: { cache: null },
      initialState: (batch) => [new Float32Array(batch), new Float32Array(batch)],
      async forward(ids, state) {
        const row = Float32Array.from(logits(call++));
        const out = new Float32Array(ids.length * 7);
        ids.forEach((_, i) => out.set(row, i * 7));
        return { logits: out, state: state.map((s) => s.slice()) };
      },
    };
  }
  const run = (fake, options) =>
    new BeamSearch(fake, [[fake.tokenizer.eodId]], resolveOptions(DEFAULTS, options)).run();

  test('equal totals rank by beam, then by token id (Python: the lowest ids first)', async () => {
    const fake = fakeModel(() => [0, 0, 0, 0, 0, 0, 0]);
    const texts = await run(fake, { numBeams: 2, numReturnSequences: 2, maxWords: 1, stopAtEnd: false });
    assert.deepEqual(texts, ['A', 'B']);
  });

  test('an end of the document finishes a hypothesis only among the numBeams best candidates', async () => {
    // step 1: beams "a" (total 3 - lse) and "b" (2 - lse); then every row prefers <eod> (0.5) to "a" (0):
    // the candidates are <eod> after "a", "a a", <eod> after "b" (rank 2 = numBeams: not an end), "b a"
    const fake = fakeModel((call) =>
      call === 0 ? [0, 0, -100, 3, 2, -100, -100] : [0, 0, 0.5, 0, -100, -100, -100],
    );
    const texts = await run(fake, { numBeams: 2, numReturnSequences: 2, maxWords: 4 });
    assert.deepEqual(texts, ['A', 'A a']); // "B" (the end after "b") was never a hypothesis
  });
  test('a stop string finishes a hypothesis with the word that reached it, cut inside that word', async () => {
    // "b" first, then "a" always: the stop "a" is met inside the piece " a" of the second word
    const fake = fakeModel((call) =>
      call === 0 ? [0, 0, -100, 0, 3, -100, -100] : [0, 0, -100, 3, 0, -100, -100],
    );
    const [best] = await run(fake, { numBeams: 2, maxWords: 4, stop: ['a'] });
    assert.equal(best, 'B '); // as Python: the text up to the stop string, the space before it kept
  });
});

describe('the Web Worker client, on a port of our own', () => {
  test('each reply reaches the request it answers, in whatever order replies come', async () => {
    const { port1, port2 } = new MessageChannel();
    const client = new WorkerModel(port2);
    const asked = [];
    port1.onmessage = ({ data }) => {
      asked.push(data);
      if (asked.length < 2) return;
      port1.postMessage({ id: 999, result: 'a reply to no request' }); // ignored
      for (const { id, prompt } of [...asked].reverse()) port1.postMessage({ id, result: `for ${prompt}` });
    };
    try {
      const never = new Promise((_, reject) => {
        setTimeout(() => reject(new Error('a request never settled')), 5000).unref();
      });
      const answers = await Promise.race([
        Promise.all([client.generate('first'), client.generate('second')]),
        never,
      ]);
      assert.deepEqual(answers, ['for first', 'for second']);
    } finally {
      client.terminate();
      port1.close();
    }
  });
});

environmentTests(); // test/environments.js: other onnxruntime modules, runtimes and TypeScript settings
