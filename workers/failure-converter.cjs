// Loaded by path (Temporal's failureConverterPath) into the workflow bundle and
// by clients and workers when payload encryption is on: failure messages and
// stack traces travel as an encoded payload, so the codec encrypts them too
// (they may name an asset's files). Plain CommonJS: the SDK require()s it.
const { DefaultFailureConverter } = require('@temporalio/common');

exports.failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
