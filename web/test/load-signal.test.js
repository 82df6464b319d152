// load()'s `signal`: a download from a server that never answers ends when it aborts (it waited forever in
// a browser, about 300 s under Node), an aborted signal reads nothing, and a session that comes after an
// abort is released. Runs without the Python reference (npm test).

import assert from 'node:assert/strict';
import { once } from 'node:events';
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
    const fetching = () => assert.fail('fetch was called');
    const error = await refusal(load(`${base}/model.onnx`, { signal: AbortSignal.abort(), fetch: fetching }));
    assert.ok(isError('AbortError')(error), String(error));
    assert.equal(requests.length, asked); // no request reached the server
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
    controller.abort(); // after the load: the models stay usable
    assert.equal(await models[0].generate('a neural network', { maxWords: 8, seed: 1 }), texts[0]);
    await Promise.all(models.map((m) => m.release()));
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
});
