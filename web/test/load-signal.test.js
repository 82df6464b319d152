// load()'s `signal`: a download from a server that never answers ends when it aborts (it waited forever in
// a browser, about 300 s under Node), an aborted signal reads nothing, and a session that comes after an
// abort is released. Runs without the Python reference (npm test).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { getEventListeners, once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { load, NextwordError } from '../src/index.js';
import { importOrt } from '../src/ort.js';
import { refusal } from './environments.js';

const BUNDLED = fileURLToPath(new URL('../../runtime/data/nextword-patents.onnx', import.meta.url));
const isError = (name) => (error) => error instanceof DOMException && error.name === name;

describe('load({ signal })', { timeout: 120_000 }, () => {
  let bytes;
  let server;
  let base;
  const requests = []; // the paths asked for, in order
  const closed = []; // the paths whose connection the client closed

  before(async () => {
    bytes = new Uint8Array(await readFile(BUNDLED));
    server = createServer((request, response) => {
      requests.push(request.url);
      request.socket.on('close', () => closed.push(request.url));
      if (request.url === '/model.onnx') {
        response.writeHead(200, { 'content-length': bytes.length }).end(bytes);
      } else if (request.url === '/half.onnx') {
        // the headers and half the file, then nothing: a download that stalls part way
        response.writeHead(200, { 'content-length': bytes.length });
        response.write(bytes.subarray(0, bytes.length >> 1));
      }
      // any other path: the request is accepted and never answered
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${server.address().port}`;
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  /** Wait until the server has seen the connection of `path` closed (the test's timeout bounds it). */
  async function closedBy(path) {
    while (!closed.includes(path)) await new Promise((resolve) => setTimeout(resolve, 10));
  }

  test('a server that never answers: the load rejects with the timeout, and the download is ended', async () => {
    const error = await refusal(load(`${base}/silent.onnx`, { signal: AbortSignal.timeout(200) }));
    assert.ok(isError('TimeoutError')(error), String(error)); // the signal's reason, not a ModelFileError
    assert.ok(requests.includes('/silent.onnx'));
    await closedBy('/silent.onnx'); // fetch was given the signal: the connection does not stay open
    // stalled after the headers and half the body: the body's read ends as well
    const controller = new AbortController();
    const loading = load(`${base}/half.onnx`, { signal: controller.signal });
    while (!requests.includes('/half.onnx')) await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort();
    assert.ok(isError('AbortError')(await refusal(loading)));
    await closedBy('/half.onnx');
  });

  test('a fetch given to load() is called with the signal, and one that ignores it is cut short', async () => {
    const seen = [];
    const passing = (url, init) => (seen.push(init?.signal), fetch(url, init));
    const signal = AbortSignal.timeout(200);
    assert.ok(isError('TimeoutError')(await refusal(load(`${base}/slow.onnx`, { signal, fetch: passing }))));
    assert.deepEqual(seen, [signal]);
    // a fetch of one argument, the signal lost: the load still ends when it aborts
    const reason = new Error('left the page');
    const controller = new AbortController();
    const loading = load(`${base}/deaf.onnx`, { signal: controller.signal, fetch: (url) => fetch(url) });
    while (!requests.includes('/deaf.onnx')) await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort(reason);
    assert.equal(await refusal(loading), reason);
    // and a Blob whose bytes never come
    class Stalled extends Blob {
      arrayBuffer() {
        return new Promise(() => {});
      }
    }
    const blob = new Stalled([bytes]);
    assert.ok(isError('TimeoutError')(await refusal(load(blob, { signal: AbortSignal.timeout(100) }))));
  });

  test('a signal already aborted rejects before anything is fetched or read', async () => {
    const asked = requests.length;
    const reason = new Error('stopped');
    for (const source of [`${base}/model.onnx`, BUNDLED, bytes, new Blob([bytes])]) {
      const error = await refusal(load(source, { signal: AbortSignal.abort() }));
      assert.ok(isError('AbortError')(error), String(error));
      assert.equal(await refusal(load(source, { signal: AbortSignal.abort(reason) })), reason);
    }
    // a fetch given to load() is not called, a Blob not read (the abort alone would still reject the load)
    const called = [];
    const fetching = (url) => (called.push(url), new Promise(() => {}));
    class Watched extends Blob {
      arrayBuffer() {
        called.push('arrayBuffer');
        return super.arrayBuffer();
      }
    }
    for (const options of [{ fetch: fetching }, {}]) {
      const source = options.fetch ? `${base}/model.onnx` : new Watched([bytes]);
      const error = await refusal(load(source, { ...options, signal: AbortSignal.abort() }));
      assert.ok(isError('AbortError')(error), String(error));
    }
    assert.deepEqual(called, []);
    assert.equal(requests.length, asked); // no request reached the server
  });

  test('a signal that aborts while a step is called (before it returns) ends the load at once', async () => {
    // the fetch (or the Blob's read) aborts the signal as it starts, and never answers: the signal had
    // aborted before load() began to wait for it, and the load still rejects with its reason
    const reason = new Error('cancelled as it started');
    const controller = new AbortController();
    const aborting = () => (controller.abort(reason), new Promise(() => {}));
    const loading = load(`${base}/never.onnx`, { signal: controller.signal, fetch: aborting });
    assert.equal(await refusal(loading), reason);
    const blobbed = new AbortController();
    class Aborting extends Blob {
      arrayBuffer() {
        blobbed.abort(reason);
        return new Promise(() => {});
      }
    }
    assert.equal(await refusal(load(new Aborting([bytes]), { signal: blobbed.signal })), reason);
  });

  test('a signal that is no AbortSignal is a TypeError naming it; null is no signal, as in fetch', async () => {
    for (const [signal, shown] of [
      [{}, '[object Object]'],
      ['abort', '[object String]'],
      [{ aborted: true }, '[object Object]'],
      [new AbortController(), '[object AbortController]'],
    ]) {
      const error = await refusal(load(bytes, { signal }));
      assert.ok(error instanceof TypeError, String(error));
      assert.equal(error.message, `signal must be an AbortSignal, got ${shown}`);
    }
    const unknown = await refusal(load(bytes, { signl: AbortSignal.abort() }));
    assert.ok(unknown instanceof NextwordError);
    assert.match(unknown.message, /load takes \[.*"fetch","signal"\]/);
    const model = await load(bytes, { signal: null });
    await model.release();
  });

  test('a signal that never aborts changes nothing: a URL, a path and bytes load', async () => {
    const controller = new AbortController();
    const signal = controller.signal;
    const models = [
      await load(`${base}/model.onnx`, { signal }),
      await load(`${base}/model.onnx`, { signal, fetch: (url, init) => fetch(url, init) }),
      await load(BUNDLED, { signal: AbortSignal.timeout(600_000) }),
      await load(bytes, { signal }),
    ];
    const texts = await Promise.all(
      models.map((m) => m.generate('a neural network', { maxWords: 8, seed: 1 })),
    );
    assert.equal(typeof texts[0], 'string');
    assert.equal(new Set(texts).size, 1);
    // every step load() waited on let go of the signal: a signal kept for a page's lifetime, given to
    // each load, gathers no listeners (a fetch, Node's included, holds its own until it is collected)
    const kept = new AbortController();
    for (const source of [bytes, new Blob([bytes]), BUNDLED]) {
      await (await load(source, { signal: kept.signal })).release();
    }
    assert.deepEqual(getEventListeners(kept.signal, 'abort'), []);
    controller.abort(); // after the load: the models stay usable
    assert.equal(await models[0].generate('a neural network', { maxWords: 8, seed: 1 }), texts[0]);
    await Promise.all(models.map((m) => m.release()));
  });

  test("aborted while onnxruntime-web's module is imported (a page's first load fetches it): the load ends", () => {
    // in a Node of its own, whose import of onnxruntime-web never finishes (a module hook holds it): the
    // bytes are read and checked at once, so the abort comes while load() waits for the import
    const hooks = `export async function resolve(specifier, context, next) {
      return specifier === 'onnxruntime-web/wasm' ? new Promise(() => {}) : next(specifier, context);
    }`;
    const register = `import { register } from 'node:module';
      register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;
    const code = `
      import { readFileSync } from 'node:fs';
      import { load } from './src/index.js';
      const reason = new Error('stopped');
      const controller = new AbortController();
      const loading = load(readFileSync(${JSON.stringify(BUNDLED)}), { signal: controller.signal });
      setTimeout(() => controller.abort(reason), 0);
      loading.then(() => console.log('loaded'), (e) => console.log(e === reason ? 'the reason' : String(e)));`;
    const flags = ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module'];
    const result = spawnSync(process.execPath, [...flags, '-e', code], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
      timeout: 60_000,
    });
    // without the abort heard, the load waited on the import and Node exited with nothing said
    assert.equal(result.stdout, 'the reason\n', result.stderr);
  });

  test('aborted once the session exists, or while it is made: the load rejects, the session is released', async () => {
    const real = await importOrt();
    const released = [];
    /** onnxruntime-web, each session's release() recorded; `made(session)` runs before create() returns. */
    const recording = (made) => ({
      env: real.env,
      Tensor: real.Tensor,
      InferenceSession: {
        create: async (data, options) => {
          const session = await real.InferenceSession.create(data, options);
          const release = session.release.bind(session);
          session.release = () => (released.push(session), release());
          await made(session);
          return session;
        },
      },
    });
    // aborted during load()'s probe step: the session is released before load() rejects
    const controller = new AbortController();
    const probed = recording((session) => {
      const run = session.run.bind(session);
      session.run = (...args) => (controller.abort(), run(...args));
    });
    const error = await refusal(load(bytes, { ort: probed, signal: controller.signal }));
    assert.ok(isError('AbortError')(error), String(error));
    assert.equal(released.length, 1);
    // aborted while onnxruntime makes it (held here until `finish`): load() rejects without waiting for
    // it, and the session is released once it comes
    const slow = new AbortController();
    let making;
    let finish;
    const entered = new Promise((resolve) => (making = resolve));
    const held = recording(() => (making(), new Promise((resolve) => (finish = resolve))));
    const loading = load(bytes, { ort: held, signal: slow.signal });
    await entered;
    slow.abort();
    assert.ok(isError('AbortError')(await refusal(loading)));
    assert.equal(released.length, 1);
    finish();
    while (released.length < 2) await new Promise((resolve) => setTimeout(resolve, 10)); // bounded by the test's timeout
  });

  test('aborted by the call that makes the session, which then throws: the load rejects with the reason', async () => {
    // a signal that has aborted is what the load rejects with, whatever failed with it (as fetch does)
    const reason = new Error('left the page');
    const controller = new AbortController();
    const create = () => {
      controller.abort(reason);
      throw new Error('no backend');
    };
    const ort = { InferenceSession: { create } }; // a native binding's shape: no onnxruntime-web env
    assert.equal(await refusal(load(bytes, { ort, signal: controller.signal })), reason);
  });

  test('a session that comes after an abort still started onnxruntime-web: later loads keep its threads', async () => {
    // onnxruntime-web as an app set it up (3 threads); its first session, held until `finish`, comes
    // after the abort, and its backend has started with 3 threads, which a later load cannot change
    const real = await importOrt();
    let entered;
    let finish;
    let released;
    const making = new Promise((resolve) => (entered = resolve));
    const gone = new Promise((resolve) => (released = resolve));
    let calls = 0;
    const web = {
      env: { versions: { web: '1.30.0' }, wasm: { numThreads: 3 } },
      Tensor: real.Tensor,
      InferenceSession: {
        create: async (data) => {
          const session = await real.InferenceSession.create(data);
          if (calls++ > 0) return session;
          entered();
          await new Promise((resolve) => (finish = resolve));
          const release = session.release.bind(session);
          session.release = () => release().finally(released);
          return session;
        },
      },
    };
    const controller = new AbortController();
    const loading = load(bytes, { ort: web, signal: controller.signal });
    await making;
    controller.abort();
    assert.ok(isError('AbortError')(await refusal(loading)));
    finish();
    await gone; // the late session released (bounded by the test's timeout)
    const changed = await refusal(load(bytes, { ort: web, numThreads: 1 }));
    assert.match(changed.message, /^numThreads: onnxruntime-web started with 3 thread\(s\)/);
  });
  test('a late session whose release fails leaves no unhandled rejection (which ends a Node process)', async () => {
    const unhandled = [];
    const record = (reason) => unhandled.push(reason);
    process.on('unhandledRejection', record);
    try {
      let entered;
      let finish;
      let asked;
      const making = new Promise((resolve) => (entered = resolve));
      const releasing = new Promise((resolve) => (asked = resolve));
      const late = { release: () => (asked(), Promise.reject(new Error('the backend is gone'))) };
      const create = async () => (entered(), await new Promise((resolve) => (finish = resolve)), late);
      const controller = new AbortController();
      const loading = load(bytes, { ort: { InferenceSession: { create } }, signal: controller.signal });
      await making;
      controller.abort();
      assert.ok(isError('AbortError')(await refusal(loading)));
      finish();
      await releasing;
      await new Promise((resolve) => setTimeout(resolve, 0)); // rejections left unhandled are reported by now
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', record);
    }
  });
});
