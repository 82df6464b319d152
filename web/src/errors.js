// The exceptions nextword-web throws on purpose, mirroring the Python runtime's: bad input is a
// NextwordError (Python: ValueError), an unusable model file a ModelFileError.

/** Bad input: an invalid option, prompt or argument. The message names the problem and the fix. */
export class NextwordError extends Error {
  constructor(message) {
    super(message);
    this.name = 'NextwordError';
  }
}

/** A file that is not a usable nextword model; the message names the file, the problem and the fix. */
export class ModelFileError extends NextwordError {
  constructor(message) {
    super(message);
    this.name = 'ModelFileError';
  }
}

/** onnxruntime failed while running a model that had loaded (a subclass of ModelFileError, as in Python:
 * load() probes the graph, so a later failure means a damaged or crafted file). */
export class ModelRunError extends ModelFileError {
  constructor(message) {
    super(message);
    this.name = 'ModelRunError';
  }
}
