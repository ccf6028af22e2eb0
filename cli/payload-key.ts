/** `lifeline keys payload-key`: creates the Temporal payload encryption key file (owner-only), never printing the key. */
import { Command } from 'commander';
import { UserError } from '../config/errors';
import { resolveFromRoot } from '../config/root';
import { writeSecretFile } from '../engine/crypto/key-files';
import { SecretFileError } from '../engine/crypto/errors';
import { generatePayloadKey, payloadKeyId } from '../workers/codec';
import { context, json, out } from './context';

export function registerPayloadKeyCommand(program: Command): void {
  // Lives under `lifeline keys` (registered in cli/keys.ts) with the other key commands.
  const keys = program.commands.find((c) => c.name() === 'keys') ?? program.command('keys');
  keys
    .command('payload-key')
    .description('create the AES-256 key that encrypts Temporal payloads (temporal.payloadEncryption.key), mode 0600; never overwrites')
    .option('--out <file>', 'where to write it (default: the file temporal.payloadEncryption.key names)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { out?: string; json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const ref = ctx.config.temporal.payloadEncryption.key;
      const file = opts.out ?? (ref && 'file' in ref ? resolveFromRoot(ref.file, ctx.config.source.root) : undefined);
      if (!file) throw new UserError('give --out <file>, or set temporal.payloadEncryption.key to { file: … } in the config');
      const key = generatePayloadKey();
      try {
        await writeSecretFile(file, key + '\n');
      } catch (err) {
        if (err instanceof SecretFileError) throw new UserError(err.message);
        throw err;
      }
      const keyId = payloadKeyId(Buffer.from(key, 'base64'));
      ctx.logger.info({ file, keyId }, 'payload encryption key created');
      if (opts.json) json({ file, keyId });
      else out(`payload key ${keyId} written to ${file} (mode 0600). Give every worker and client the same file: temporal.payloadEncryption.key: { file: ${file} }`);
    });
}
